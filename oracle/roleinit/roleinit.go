// Package roleinit runs the oracle's role processes from a package
// initialiser: a binary that imports it for its side effect becomes a
// target or prober (or the verification VM's init) before the
// initialisers of packages that sort after it by import path and do not
// precede it in the import graph have run.
package roleinit

import "github.com/procgate/procgate/oracle"

func init() { oracle.RunRoleIfRequested() }
