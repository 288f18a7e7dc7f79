// Package report answers "who can reach whom" on a machine: which
// principals (the distinct credentials of running processes, and login
// users without a process) can see, read or attach to which processes,
// which layer of the kernel's decision says so, what stays unknown, and
// with a broker policy what the broker or the FUSE mount would grant on
// top. It works on any kernel.World — the live machine, a scenario file,
// or snapshots of a fleet — through the same model as `procgate check`
// and the same decision as the enforcement fronts (gate.Decide).
//
// # Classes
//
// Processes are grouped into principal classes (every input a decision
// reads from a caller: the four uids and gids, supplementary groups,
// capability sets, user namespace, security labels, Landlock domain) and
// target classes (the same, and the address space's dumpable flag and
// user namespace, an existing tracer, a Yama exception). Two members of
// a class are indistinguishable to the model, so the answer for an
// unrelated pair of processes is the answer for its classes' edge: the
// work grows with the number of classes, not with the square of the
// processes. Pairs whose processes are related (the target descends from
// the principal, is traced by it, names it in a Yama exception, or
// shares its address space) are decided one by one, since Yama and the
// model's shared-mm rule look at the pair itself.
//
// # What-if and findings
//
// A what-if ([ParseWhatIf]: yama=, suid_dumpable=, hidepid=, policy=,
// drop-cap=) builds the report again with the change applied and lists
// the edges whose pairs lose or gain an access ([Diff]). Findings rank
// what an auditor should look at first, each with the explain story of
// one pair.
//
// # Outputs
//
// The same [Report] is written as a terminal table, JSON (the schema is
// in docs/report.md), Graphviz DOT, the OpenMetrics text format of
// node_exporter's textfile collector, and one self-contained HTML page.
package report
