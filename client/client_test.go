package client

import (
	"encoding/json"
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/procgate/procgate/gate"
)

func TestItemErrorIs(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		perm  bool
	}{{syscall.EACCES, true}, {syscall.EPERM, true}, {syscall.ESRCH, false}, {syscall.ETIMEDOUT, false}}
	for _, tc := range tests {
		p := &Process{PID: 7, items: map[string]wireItem{"io": {Error: &wireError{Errno: "X", Code: int(tc.errno), Reason: "r"}}}}
		_, err := p.Text("io")
		var ie *ItemError
		if !errors.As(err, &ie) || ie.Errno != tc.errno || ie.Item != "io" {
			t.Fatalf("Text(io) error = %v, want an ItemError with %v", err, tc.errno)
		}
		if got := errors.Is(err, fs.ErrPermission); got != tc.perm {
			t.Errorf("errors.Is(%v, fs.ErrPermission) = %v, want %v", tc.errno, got, tc.perm)
		}
	}
	p := &Process{PID: 7, items: map[string]wireItem{}}
	if _, err := p.Text("environ"); !errors.Is(err, ErrNotRequested) {
		t.Errorf("unrequested item: %v", err)
	}
}

// TestItemErrorText: a denial prints its errno once, and encodes as the
// broker's error object, with the broker's errno name and number.
func TestItemErrorText(t *testing.T) {
	tests := []struct {
		err      ItemError
		text     string
		jsonText string
	}{
		{ItemError{PID: 7, Item: "environ", Errno: syscall.EACCES, ErrnoName: "EACCES", Reason: "policy: no rule grants read { environ }"},
			"pid 7 environ: permission denied: policy: no rule grants read { environ }",
			`{"errno":"EACCES","code":13,"reason":"policy: no rule grants read { environ }"}`},
		{ItemError{PID: 9, Errno: syscall.ESRCH, ErrnoName: "ESRCH", Reason: "gate: pidfd_open 9: no such process"},
			"pid 9: no such process: gate: pidfd_open 9",
			`{"errno":"ESRCH","code":3,"reason":"gate: pidfd_open 9: no such process"}`},
		{ItemError{PID: 9, Item: "io", Errno: syscall.ETIMEDOUT, Reason: "timed out"},
			"pid 9 io: connection timed out: timed out",
			`{"errno":"ETIMEDOUT","code":110,"reason":"timed out"}`},
		{ItemError{PID: 9, Item: "io", Errno: syscall.EPERM, Reason: "operation not permitted"},
			"pid 9 io: operation not permitted",
			`{"errno":"EPERM","code":1,"reason":"operation not permitted"}`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.text {
			t.Errorf("Error() = %q, want %q", got, tc.text)
		}
		b, err := json.Marshal(&tc.err)
		if err != nil || string(b) != tc.jsonText {
			t.Errorf("json.Marshal = %s, %v, want %s", b, err, tc.jsonText)
		}
		back := ItemError{PID: tc.err.PID, Item: tc.err.Item}
		if err := json.Unmarshal(b, &back); err != nil || back.Errno != tc.err.Errno || back.Name() != tc.err.Name() || back.Reason != tc.err.Reason {
			t.Errorf("json.Unmarshal(%s) = %+v, %v, want %+v", b, back, err, tc.err)
		}
	}
}

// TestQuickString: every string the broker writes decodes by the quick
// path to what encoding/json decodes; what the quick path cannot take
// is left to encoding/json.
func TestQuickString(t *testing.T) {
	for _, s := range []string{"", "Name:\tsleep\nState:\tS (sleeping)\n", `quo"te \ back`, "\x00\x1f\x7f", "é ü \u2028 \u2029 <>&", "\xff broken"} {
		raw := gate.AppendString(nil, s)
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := quickString(raw)
		if !ok || got != want {
			t.Errorf("%q: quick %q %v, want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{`"a\/b"`, `"\b\f"`, `123`, `"unterminated`, `"\ud800"`} {
		if got, ok := quickString([]byte(raw)); ok {
			var want string
			if json.Unmarshal([]byte(raw), &want) != nil || got != want {
				t.Errorf("%s: quick path took it as %q", raw, got)
			}
		}
	}
}
