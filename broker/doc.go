// Package broker is procgate's privileged daemon (procgate serve): an
// HTTP/1.1 + JSON server on a Unix socket, a thin shell around package
// gate. Each connection's caller is identified by the socket
// (SO_PEERCRED, SO_PEERPIDFD to pin it, SO_PEERSEC for its label) and
// pinned for the life of the connection; POST /v1/read answers batches of
// processes × items as a stream of JSON lines, one per process, with a
// value or a denial (errno and reason) per item. The API is documented in
// docs/api.md and docs/api.openapi.yaml.
//
// The package also holds the daemon's plumbing: the socket (Listen,
// systemd socket activation), per-uid and global limits, and dropping its
// own privileges after binding (DropPrivileges, RestrictFilesystem).
package broker
