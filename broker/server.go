package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/privsep"
)

// Version is the API version served under /v1/.
const Version = "v1"

// Config configures a Server.
type Config struct {
	// Backend answers the requests: privsep.NewLocal(gate) in-process,
	// or a privsep.Remote reader process (privilege separation). When
	// nil, privsep.NewLocal(Gate).
	Backend privsep.Backend
	// Gate is the in-process gate, used when Backend is nil.
	Gate *gate.Gate
	// Log receives operational messages (never audit records, never
	// values read); nil discards them.
	Log *slog.Logger
	// Limits bound open connections, per uid and in total, and the
	// requests of one uid in progress at once (more get 429).
	Limits privsep.Limits
	// WriteTimeout bounds each write to a client (default 10s): a client
	// that stops reading is dropped.
	WriteTimeout time.Duration
	// ServerVersion is reported by /v1/version.
	ServerVersion string
}

// Server is the broker: an HTTP/1.1 + JSON server on a Unix socket that
// answers /v1/ requests through a privsep.Backend for the connected
// caller.
type Server struct {
	cfg  Config
	be   privsep.Backend
	http *http.Server
	log  *slog.Logger
	lim  *privsep.Limiter

	idleMu sync.Mutex
	idle   map[*peerConn]time.Time // connections waiting for a request, since when
	stop   chan struct{}
	stopMu sync.Once
}

// Idle connections are closed after IdleTimeout (2 minutes); once the
// general pool is under pressure (privsep.Limiter.Pressure), after
// pressureIdle, checked every reapEvery.
const (
	pressureIdle = time.Second
	reapEvery    = 250 * time.Millisecond
)

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, be: cfg.Backend, log: cfg.Log, lim: privsep.NewLimiter(cfg.Limits), idle: map[*peerConn]time.Time{}, stop: make(chan struct{})}
	if s.be == nil {
		s.be = privsep.NewLocal(cfg.Gate)
	}
	s.http = &http.Server{
		Handler:           s.guard(http.HandlerFunc(s.route)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ConnState:         s.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok {
				return context.WithValue(ctx, callerKey{}, pc)
			}
			return ctx
		},
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return s
}

type callerKey struct{}

// route dispatches on the exact path: a path the server would clean
// ("/v1/../v1/whoami", "//v1/read") is an unknown endpoint, answered in
// JSON like every error, never redirected.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	type endpoint struct {
		method string
		h      func(http.ResponseWriter, *http.Request)
	}
	var e endpoint
	switch r.URL.Path {
	case "/v1/read":
		e = endpoint{http.MethodPost, s.handleRead}
	case "/v1/version":
		e = endpoint{http.MethodGet, s.handleVersion}
	case "/v1/whoami":
		e = endpoint{http.MethodGet, s.handleWhoami}
	case "/v1/items":
		e = endpoint{http.MethodGet, s.handleItems}
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint "+r.Method+" "+r.URL.Path+" (see docs/api.md: POST /v1/read, GET /v1/version, /v1/whoami, /v1/items)")
		return
	}
	if r.Method != e.method && !(e.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", e.method)
		hint := ""
		if e.method == http.MethodPost {
			hint = " with a JSON body"
		}
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+r.URL.Path+": use "+e.method+hint)
		return
	}
	e.h(w, r)
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	go s.reap()
	err := s.http.Serve(&listener{Listener: l, s: s})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets requests in progress finish (until ctx
// ends) and closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopMu.Do(func() { close(s.stop) })
	return s.http.Shutdown(ctx)
}

// guard refuses unidentified callers and callers that exited, and applies
// the per-uid request limit.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pc, _ := r.Context().Value(callerKey{}).(*peerConn)
		if pc == nil {
			writeError(w, http.StatusForbidden, "unidentified", "the caller cannot be identified")
			return
		}
		sess, err := pc.session()
		switch {
		case errors.Is(err, privsep.ErrUnavailable):
			writeUnavailable(w)
			return
		case err != nil:
			writeError(w, http.StatusForbidden, "unidentified", err.Error())
			return
		case pc.adm == privsep.Reserved && !sess.Privileged():
			// A provisional reserved slot: the caller turned out not to be
			// one the reserve is kept for.
			w.Header().Set("Connection", "close")
			s.be.Reject("too_many_connections")
			writeError(w, http.StatusTooManyRequests, "too_many_connections", errTooManyConns.Error())
			return
		}
		if err := sess.Alive(); err != nil {
			if errors.Is(err, privsep.ErrUnavailable) {
				writeUnavailable(w)
				return
			}
			writeError(w, http.StatusGone, "caller_gone", "the calling process exited")
			return
		}
		end, ok := s.lim.BeginRequest(pc.id.UID)
		if !ok {
			s.be.Reject("per_uid_limit")
			writeError(w, http.StatusTooManyRequests, "too_many_requests",
				"too many requests in progress for uid "+strconv.FormatUint(uint64(pc.id.UID), 10))
			return
		}
		defer end()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, pc)))
	})
}

// errorBody is the JSON error shape of every non-2xx answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e errorBody
	e.Error.Code, e.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// writeUnavailable answers 503: the privileged reader is gone, the
// broker fails closed (and exits; its supervisor restarts it).
func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "unavailable", "the broker's privileged reader is unavailable; retry later")
}

// writeBackendError answers an error of a session operation before any
// output.
func writeBackendError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, privsep.ErrUnavailable):
		writeUnavailable(w)
	case errors.Is(err, gate.ErrCallerGone):
		writeError(w, http.StatusGone, "caller_gone", err.Error())
	case errors.Is(err, unix.EAGAIN):
		writeError(w, http.StatusConflict, "caller_changed", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	pc := r.Context().Value(callerKey{}).(*peerConn)
	gen, err := pc.sess.Generation()
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, map[string]any{"api": Version, "server": s.cfg.ServerVersion, "policy_generation": gen})
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	pc := r.Context().Value(callerKey{}).(*peerConn)
	b, err := pc.sess.Whoami()
	if err != nil {
		writeBackendError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func (s *Server) handleItems(w http.ResponseWriter, r *http.Request) {
	type item struct {
		Name  string `json:"name"`
		Class string `json:"class"`
		Doc   string `json:"doc"`
	}
	var out []item
	for _, it := range policy.Items() {
		c := "read"
		if it.Attach() {
			c = "attach"
		}
		out = append(out, item{it.String(), c, it.Doc()})
	}
	writeJSON(w, map[string]any{"items": out})
}

// handleRead answers POST /v1/read as a stream of JSON lines: one per
// process, then {"done":true,...}.
func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) {
	pc := r.Context().Value(callerKey{}).(*peerConn)
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	req, err := DecodeReadRequest(r.Body)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			code := "bad_request"
			if re.Status == http.StatusRequestEntityTooLarge {
				code = "too_large"
			}
			s.be.Reject(code)
			writeError(w, re.Status, code, re.Msg)
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	bw := &lineWriter{w: w, rc: rc, timeout: s.cfg.WriteTimeout}
	n, gen, err := pc.sess.Read(r.Context(), req, func(lines []byte) error {
		bw.buf = append(bw.buf, lines...)
		if len(bw.buf) >= 32<<10 {
			return bw.flush()
		}
		return nil
	})
	if err != nil && r.Context().Err() != nil {
		return // the client went away: nobody to answer
	}
	if err != nil && !bw.started && len(bw.buf) == 0 {
		writeBackendError(w, err)
		return
	}
	if err != nil {
		if errors.Is(err, gate.ErrCallerGone) || r.Context().Err() != nil {
			return // nobody to answer
		}
		// Headers are sent: report the error in the stream, then end it.
		code := "internal"
		if errors.Is(err, privsep.ErrUnavailable) {
			code = "unavailable"
		}
		bw.buf = append(bw.buf, `{"error":{"code":"`+code+`","message":`...)
		bw.buf = gate.AppendString(bw.buf, err.Error())
		bw.buf = append(bw.buf, "}}\n"...)
		bw.flush()
		return
	}
	bw.buf = append(bw.buf, `{"done":true,"processes":`...)
	bw.buf = strconv.AppendInt(bw.buf, int64(n), 10)
	bw.buf = append(bw.buf, `,"policy_generation":`...)
	bw.buf = strconv.AppendUint(bw.buf, gen, 10)
	bw.buf = append(bw.buf, "}\n"...)
	bw.flush()
}

// lineWriter batches lines and writes them with a deadline per write.
type lineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	buf     []byte
	timeout time.Duration
	started bool
}

func (b *lineWriter) flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	b.rc.SetWriteDeadline(time.Now().Add(b.timeout))
	b.started = true
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	if err == nil {
		err = b.rc.Flush()
	}
	return err
}
