// Package scenario reads and writes scenario files: a YAML description of
// a kernel, its user namespaces and tasks, and the access checks to make
// (the format design.md fixes under "Contracts"). Loading builds a
// [kernel.World] with its security modules and resolves every check;
// any error carries the file, line and column it comes from.
package scenario
