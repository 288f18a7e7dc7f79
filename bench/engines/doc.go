// Package engines benchmarks the procgate policy engine against general
// policy engines, OPA/Rego and CEL, on the same example policy
// (examples/policies/broker.pol, policy-language.md §6.3). It is a module
// of its own so that neither engine ever becomes a dependency of procgate.
//
//	cd bench/engines && go test -run Ratios -v -bench . -benchmem
package engines
