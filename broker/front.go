package broker

import (
	"context"
	"log/slog"
	"net"
	"os"

	"github.com/procgate/procgate/privsep"
)

// Front is the broker as a front of the daemon (package daemon): it
// listens on a Unix socket, or takes the one passed by systemd socket
// activation, and serves the HTTP API on it.
type Front struct {
	// Socket is the path to listen on, unless socket activation passes
	// a listener.
	Socket string
	// Limits bound connections and requests per uid.
	Limits privsep.Limits
	// Version is reported by /v1/version.
	Version string
	// Log receives operational messages.
	Log *slog.Logger

	l       net.Listener
	created bool
	srv     *Server
}

// Prepare binds the socket (or takes the activated one) and builds the
// server around be.
func (f *Front) Prepare(be privsep.Backend) error {
	l, err := ActivationListener()
	if err != nil {
		return err
	}
	if l == nil {
		if l, err = Listen(f.Socket); err != nil {
			return err
		}
		f.created = true
	}
	f.l = l
	f.srv = New(Config{Backend: be, Log: f.Log, Limits: f.Limits, ServerVersion: f.Version})
	return nil
}

// Serve serves the API until Shutdown.
func (f *Front) Serve() error { return f.srv.Serve(f.l) }

// Shutdown stops accepting, lets requests in progress finish until ctx
// ends, closes every connection and removes the socket it created when
// it still may (a confined front may not: the next start replaces the
// stale socket).
func (f *Front) Shutdown(ctx context.Context) error {
	var err error
	if f.srv != nil {
		err = f.srv.Shutdown(ctx)
	}
	if f.l != nil {
		f.l.Close()
	}
	if f.created {
		os.Remove(f.Socket)
	}
	return err
}

// Addr returns the socket's address.
func (f *Front) Addr() string {
	if f.l != nil {
		return f.l.Addr().String()
	}
	return f.Socket
}
