// Package broker is the HTTP front of procgate's daemon (procgate serve):
// an HTTP/1.1 + JSON server on a Unix socket. Each connection's caller is
// identified by the socket (privsep.PeerOf: SO_PEERCRED, SO_PEERPIDFD to
// pin it, SO_PEERSEC for its label) and pinned for the life of the
// connection; POST /v1/read answers batches of processes × items as a
// stream of JSON lines, one per process, with a value or a denial (errno
// and reason) per item. The API is documented in docs/api.md and
// docs/api.openapi.yaml.
//
// The package holds only what is HTTP: the routes, the request decoding
// and its errors, the streaming of answers, and the socket (Listen,
// systemd socket activation). Everything else is the enforcement core
// every front shares: the caller's identity, the backend that answers it
// (the gate in-process, or a privilege-separated reader), the limits on
// what callers may hold, confinement and the daemon's lifecycle live in
// packages privsep and daemon.
package broker
