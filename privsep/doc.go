// Package privsep is the enforcement core every front of procgate's
// daemon shares (the HTTP broker, the FUSE /proc): who the caller is,
// what answers it, and the separation of privilege between the process
// that parses the callers' input and the one that reads other processes.
//
// A front builds an [Identity] for each caller — the peer credentials of
// a Unix socket ([PeerOf]), or the thread id, uid and gid of a FUSE
// request — and opens a [Session] on a [Backend]. [Local] runs the gate
// in the front's own process; [Remote] runs it in a reader process (this
// binary re-executed, [RunReaderIfRequested]) reached over
// SOCK_SEQPACKET socket pairs. The reader trusts nothing the front sends:
// it reads a socket caller's credentials from the connection itself,
// passed with SCM_RIGHTS, resolves a thread caller to its process and
// checks the thread's ids against the pinned process, and validates
// every request again against the same bounds ([MaxPIDs], [MaxItems],
// [MaxMemRanges], [MaxPID]).
//
// Confinement: the front drops every capability, sets no_new_privs and
// enforces a Landlock domain with no rule ([ConfineFront]); the reader
// keeps only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH ([DropPrivileges])
// and, since a Landlock domain would scope its own ptrace checks, runs in
// a mount namespace of its own whose mounts are read-only
// ([ConfineMounts]). Capabilities are dropped on every thread with psx,
// so that a binary built with or without cgo does the same.
//
// A [Limiter] bounds what callers may hold at once (connections per uid
// and in total, requests per uid in progress).
package privsep
