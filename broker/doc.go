// Package broker is procgate's privileged daemon (procgate serve): an
// HTTP/1.1 + JSON server on a Unix socket, a thin shell around package
// gate. Each connection's caller is identified by the socket
// (SO_PEERCRED, SO_PEERPIDFD to pin it, SO_PEERSEC for its label) and
// pinned for the life of the connection; POST /v1/read answers batches of
// processes × items as a stream of JSON lines, one per process, with a
// value or a denial (errno and reason) per item. The API is documented in
// docs/api.md and docs/api.openapi.yaml.
//
// The HTTP side (Server) asks a Backend for each connection: Local runs
// the gate in the same process (procgate serve --no-privsep, tests);
// Remote runs it in a privilege-separated reader process (the default).
// With privilege separation the front — the process that parses
// untrusted input — holds no capability and confines itself with
// Landlock (ConfineFront), while the reader, this binary re-executed
// (RunReaderIfRequested), keeps CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH,
// never parses HTTP, and runs without Landlock, which would scope its
// ptrace checks to its own domain; instead it runs in a mount namespace
// of its own whose mounts it makes read-only (ConfineMounts). They talk over SOCK_SEQPACKET socket
// pairs (ipc.go); the reader reads each caller's credentials and pidfd
// from the client connection itself, passed with SCM_RIGHTS.
//
// The package also holds the daemon's plumbing: the socket (Listen,
// systemd socket activation), per-uid and global limits, and dropping
// privileges after binding (DropPrivileges, DropAllPrivileges,
// ConfineFront).
package broker
