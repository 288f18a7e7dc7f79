// Package client is the Go client of the procgate broker (procgate
// serve): it sends batch requests (processes × items) over the broker's
// Unix socket and returns typed per-item results. An item the broker
// refuses is an *ItemError whose errno matches the fs errors, so
// errors.Is(err, fs.ErrPermission) holds for a denial, just as for a
// failed open of the /proc file itself.
//
//	c := client.New("")   // $PROCGATE_SOCKET or /run/procgate/procgate.sock
//	procs, err := c.ReadAll(ctx, client.Request{PIDs: []int{pid}, Items: []string{"io", "environ"}})
//	io, err := procs[0].Text("io")
//	_, err = procs[0].List("environ") // errors.Is(err, fs.ErrPermission)
//
// The API is described in docs/api.md.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DefaultSocket is the broker's socket when neither an explicit path nor
// $PROCGATE_SOCKET is given.
const DefaultSocket = "/run/procgate/procgate.sock"

// SocketEnv names the environment variable holding the socket path.
const SocketEnv = "PROCGATE_SOCKET"

// Client talks to one broker. It is safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the broker listening on socket; "" means
// $PROCGATE_SOCKET, else DefaultSocket.
func New(socket string) *Client {
	if socket == "" {
		socket = os.Getenv(SocketEnv)
	}
	if socket == "" {
		socket = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.socket }

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// MemRange is a range of a target's address space, for the mem item.
type MemRange struct {
	Addr uint64 `json:"addr"`
	Len  uint64 `json:"len"`
}

// Request is a batch: the processes (or all) × the items.
type Request struct {
	PIDs  []int      `json:"pids,omitempty"`
	All   bool       `json:"all,omitempty"`
	Items []string   `json:"items"`
	Mem   []MemRange `json:"mem,omitempty"`
}

// APIError is an error answer of the broker (a JSON error body with an
// HTTP status).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("procgate broker: %s (%d %s)", e.Message, e.Status, e.Code)
}

// ItemError is a per-item (or per-process) denial: the errno a caller
// would have met reading the file itself, and the broker's reason.
type ItemError struct {
	PID   int
	Item  string // "" for the process as a whole
	Errno syscall.Errno
	// ErrnoName is the errno's name as the broker gave it ("EACCES");
	// Name returns it, or the name of Errno when it is empty.
	ErrnoName string
	Reason    string
}

// Error returns "pid N item: <errno text>: <reason>"; a reason that ends
// with the errno's text ("gate: pidfd_open 7: no such process") does not
// repeat it.
func (e *ItemError) Error() string {
	what := "pid " + strconv.Itoa(e.PID)
	if e.Item != "" {
		what += " " + e.Item
	}
	text := e.Errno.Error()
	switch reason := e.Reason; {
	case reason == "" || reason == text:
		return what + ": " + text
	case strings.HasSuffix(reason, ": "+text):
		return what + ": " + text + ": " + strings.TrimSuffix(reason, ": "+text)
	default:
		return what + ": " + text + ": " + reason
	}
}

// Name returns the errno's name: "EACCES", "ESRCH", ….
func (e *ItemError) Name() string {
	if e.ErrnoName != "" {
		return e.ErrnoName
	}
	if n := unix.ErrnoName(e.Errno); n != "" {
		return n
	}
	return "errno " + strconv.Itoa(int(e.Errno))
}

// MarshalJSON writes the denial as the broker does (docs/api.md):
// {"errno":"EACCES","code":13,"reason":"…"}.
func (e *ItemError) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireError{Errno: e.Name(), Code: int(e.Errno), Reason: e.Reason})
}

// UnmarshalJSON reads what MarshalJSON writes; PID and Item are left as
// they are.
func (e *ItemError) UnmarshalJSON(b []byte) error {
	var w wireError
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.Errno, e.ErrnoName, e.Reason = syscall.Errno(w.Code), w.Errno, w.Reason
	return nil
}

// Unwrap returns the errno: errors.Is(err, fs.ErrPermission) holds for
// EACCES and EPERM.
func (e *ItemError) Unwrap() error { return e.Errno }

// wireError is the JSON shape of a denial.
type wireError struct {
	Errno  string `json:"errno"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type wireItem struct {
	Value  json.RawMessage `json:"value"`
	Error  *wireError      `json:"error"`
	Masked bool            `json:"masked"`
}

type wireLine struct {
	PID   int                 `json:"pid"`
	Start uint64              `json:"start"`
	Comm  string              `json:"comm"`
	UID   uint32              `json:"uid"`
	Error *wireError          `json:"error"`
	Items map[string]wireItem `json:"items"`
	Done  bool                `json:"done"`
	Gen   uint64              `json:"policy_generation"`
}

// Process is the answer for one process.
type Process struct {
	PID int
	// Start is the process's start time (clock ticks after boot): with PID
	// it names the process answered.
	Start uint64
	Comm  string
	UID   uint32
	// Err is set when the process as a whole was not answered (ESRCH).
	Err   error
	items map[string]wireItem
}

// ErrNotRequested is returned for an item the request did not name.
var ErrNotRequested = errors.New("client: item not requested")

func (p *Process) item(name string) (json.RawMessage, error) {
	if p.Err != nil {
		return nil, p.Err
	}
	it, ok := p.items[name]
	if !ok {
		return nil, fmt.Errorf("pid %d %s: %w", p.PID, name, ErrNotRequested)
	}
	if it.Error != nil {
		return nil, toItemError(p.PID, name, it.Error)
	}
	return it.Value, nil
}

// Masked reports whether item (stat) was served with fields masked.
func (p *Process) Masked(name string) bool { return p.items[name].Masked }

// ItemErr returns the item's denial, or nil when it has a value.
func (p *Process) ItemErr(name string) error {
	_, err := p.item(name)
	return err
}

// Text returns a text item (status, stat, io, maps, exe, …).
func (p *Process) Text(name string) (string, error) {
	raw, err := p.item(name)
	if err != nil {
		return "", err
	}
	if s, ok := quickString(raw); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("pid %d %s: not a text item: %w", p.PID, name, err)
	}
	return s, nil
}

// quickString decodes a JSON string as the broker writes it
// (gate.AppendString) — runs of plain bytes between the escapes \" \\
// \n \t \r and \uXXXX (no surrogate pairs: the broker escapes only
// control characters, U+2028, U+2029 and U+FFFD) — by copying the runs,
// several times faster than encoding/json on a status file. It reports
// false for anything else, which encoding/json then decodes. raw is a
// value the line's decoding has already checked to be valid JSON.
func quickString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	if !utf8.Valid(in) { // encoding/json would replace the invalid bytes
		return "", false
	}
	var out strings.Builder // its String does not copy
	out.Grow(len(in))
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\\')
		if i < 0 {
			out.Write(in)
			break
		}
		out.Write(in[:i])
		in = in[i:]
		if len(in) < 2 {
			return "", false
		}
		switch in[1] {
		case '"', '\\':
			out.WriteByte(in[1])
		case 'n':
			out.WriteByte('\n')
		case 't':
			out.WriteByte('\t')
		case 'r':
			out.WriteByte('\r')
		case 'u':
			if len(in) < 6 {
				return "", false
			}
			r, err := strconv.ParseUint(string(in[2:6]), 16, 16)
			if err != nil || r >= 0xd800 && r <= 0xdfff {
				return "", false
			}
			out.WriteRune(rune(r))
			in = in[6:]
			continue
		default:
			return "", false
		}
		in = in[2:]
	}
	return out.String(), true
}

// List returns a list item (cmdline, environ).
func (p *Process) List(name string) ([]string, error) {
	raw, err := p.item(name)
	if err != nil {
		return nil, err
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("pid %d %s: not a list item: %w", p.PID, name, err)
	}
	return l, nil
}

// Count returns a count item (fd_count).
func (p *Process) Count(name string) (int, error) {
	raw, err := p.item(name)
	if err != nil {
		return 0, err
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("pid %d %s: not a count item: %w", p.PID, name, err)
	}
	return n, nil
}

// Links returns a map item (fd, fdinfo, ns, attr, map_files): name →
// link target (or file text for fdinfo).
func (p *Process) Links(name string) (map[string]string, error) {
	raw, err := p.item(name)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("pid %d %s: not a map item: %w", p.PID, name, err)
	}
	return m, nil
}

// MemChunk is data read from a target's memory.
type MemChunk struct {
	Addr uint64 `json:"addr"`
	Data []byte `json:"data"`
}

// Mem returns the mem item's chunks.
func (p *Process) Mem() ([]MemChunk, error) {
	raw, err := p.item("mem")
	if err != nil {
		return nil, err
	}
	var cs []MemChunk
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, fmt.Errorf("pid %d mem: %w", p.PID, err)
	}
	return cs, nil
}

// Raw returns an item's JSON value.
func (p *Process) Raw(name string) (json.RawMessage, error) { return p.item(name) }

func toItemError(pid int, item string, w *wireError) *ItemError {
	return &ItemError{PID: pid, Item: item, Errno: syscall.Errno(w.Code), ErrnoName: w.Errno, Reason: w.Reason}
}

// Read sends req and calls fn for each process as the broker streams
// the answer.
func (c *Client) Read(ctx context.Context, req Request, fn func(*Process) error) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: encode request: %w", err)
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/read", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var l wireLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("client: malformed answer line: %w", err)
		}
		switch {
		case l.Done:
			return nil
		case l.PID == 0 && l.Error != nil:
			return &APIError{Status: 500, Code: l.Error.Errno, Message: l.Error.Reason}
		case l.PID == 0:
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Error.Message != "" {
				return &APIError{Status: 500, Code: e.Error.Code, Message: e.Error.Message}
			}
			return fmt.Errorf("client: unexpected answer line %q", sc.Bytes())
		}
		p := &Process{PID: l.PID, Start: l.Start, Comm: l.Comm, UID: l.UID, items: l.Items}
		if l.Error != nil {
			p.Err = toItemError(l.PID, "", l.Error)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("client: read answer: %w", err)
	}
	return fmt.Errorf("client: answer ended early: %w", io.ErrUnexpectedEOF)
}

// ReadAll is Read collecting every process.
func (c *Client) ReadAll(ctx context.Context, req Request) ([]*Process, error) {
	var out []*Process
	err := c.Read(ctx, req, func(p *Process) error { out = append(out, p); return nil })
	return out, err
}

func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
		return &APIError{Status: resp.StatusCode, Code: "http", Message: string(bytes.TrimSpace(b))}
	}
	return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
}

// Identity is the caller as the broker sees it (GET /v1/whoami).
type Identity struct {
	PID      int      `json:"pid"`
	UID      uint32   `json:"uid"`
	GID      uint32   `json:"gid"`
	Groups   []uint32 `json:"groups"`
	Comm     string   `json:"comm"`
	SELinux  string   `json:"selinux"`
	AppArmor string   `json:"apparmor"`
	Cgroup   string   `json:"cgroup"`
	Pinned   bool     `json:"pidfd_pinned"`
}

// Whoami returns the caller's identity as the broker sees it.
func (c *Client) Whoami(ctx context.Context) (*Identity, error) {
	var id Identity
	if err := c.get(ctx, "/v1/whoami", &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// Version returns the broker's API version and policy generation.
func (c *Client) Version(ctx context.Context) (api string, generation uint64, err error) {
	var v struct {
		API string `json:"api"`
		Gen uint64 `json:"policy_generation"`
	}
	err = c.get(ctx, "/v1/version", &v)
	return v.API, v.Gen, err
}

// do sends one request to the broker (a JSON body when body is not nil)
// and returns the answer when its status is 200, else the broker's error.
// The caller closes the answer's body.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	hr, err := http.NewRequestWithContext(ctx, method, "http://procgate"+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("client: broker at %s: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("client: decode %s: %w", path, err)
	}
	return nil
}
