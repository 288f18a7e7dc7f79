package broker_test

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/client"
)

// TestEndToEnd runs the broker on a temporary socket, real target
// processes owned by one uid and clients running as other uids.
func TestEndToEnd(t *testing.T) {
	requireRoot(t)
	h := startBroker(t, testPolicy, 0)
	tgt := spawnTarget(t, uidTarget)
	own := spawnTarget(t, uidOther)
	pid, ownPID := tgt.Process.Pid, own.Process.Pid
	items := []string{"status", "io", "environ", "exe", "fd_count", "stat", "stat_full", "mem", "attach"}

	type want struct {
		item  string
		errno syscall.Errno // 0 = answered
	}
	cases := []struct {
		name   string
		uid    uint32
		groups []uint32
		pid    int
		want   []want
	}{
		{"group member reads io but not environ", uidMonitor, []uint32{groupRead}, pid, []want{
			{"status", 0}, {"io", 0}, {"exe", 0}, {"fd_count", 0}, {"stat_full", 0}, {"stat", 0},
			{"environ", syscall.EACCES}, {"mem", syscall.EPERM}, {"attach", syscall.EPERM},
		}},
		{"stranger reads only world-readable items", uidOther, nil, pid, []want{
			{"status", 0}, {"stat", 0}, {"io", syscall.EACCES}, {"environ", syscall.EACCES},
			{"exe", syscall.EACCES}, {"fd_count", syscall.EACCES}, {"stat_full", syscall.EACCES},
		}},
		{"a caller reads its own processes as the kernel lets it", uidOther, nil, ownPID, []want{
			{"io", 0}, {"environ", 0}, {"exe", 0}, {"stat_full", 0}, {"mem", syscall.EPERM},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			as := runClient(t, h, tc.uid, tc.groups, client.Request{PIDs: []int{tc.pid}, Items: items}, 1)
			got := map[string]clientAnswer{}
			for _, a := range as {
				got[a.Item] = a
			}
			for _, w := range tc.want {
				a, ok := got[w.item]
				switch {
				case !ok:
					t.Errorf("%s: no answer", w.item)
				case syscall.Errno(a.Errno) != w.errno:
					t.Errorf("%s: errno = %v (%s), want %v", w.item, syscall.Errno(a.Errno), a.Reason, w.errno)
				case w.errno != 0 && a.Reason == "":
					t.Errorf("%s: denied without a reason", w.item)
				case w.errno == syscall.EACCES || w.errno == syscall.EPERM:
					if !a.Perm {
						t.Errorf("%s: errors.Is(err, fs.ErrPermission) = false", w.item)
					}
				}
			}
			if a := got["environ"]; a.Errno == 0 && tc.pid != ownPID {
				t.Errorf("environ of another uid answered: %s", a.Value)
			}
		})
	}
	t.Run("stat is masked for strangers", func(t *testing.T) {
		as := runClient(t, h, uidOther, nil, client.Request{PIDs: []int{pid}, Items: []string{"stat"}}, 1)
		var s string
		if len(as) != 1 || json.Unmarshal(as[0].Value, &s) != nil {
			t.Fatalf("answers %+v", as)
		}
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if f[28-3] != "0" || f[29-3] != "0" {
			t.Errorf("stat startstack/esp = %s %s, want masked 0 0", f[25], f[26])
		}
	})
	t.Run("missing process", func(t *testing.T) {
		as := runClient(t, h, uidMonitor, []uint32{groupRead}, client.Request{PIDs: []int{4194000}, Items: []string{"status"}}, 1)
		if len(as) != 1 || syscall.Errno(as[0].Errno) != syscall.ESRCH {
			t.Errorf("answers %+v, want ESRCH", as)
		}
	})
	t.Run("all processes", func(t *testing.T) {
		as := runClient(t, h, uidOther, nil, client.Request{All: true, Items: []string{"stat"}}, 1)
		seen := false
		for _, a := range as {
			if a.PID == pid && a.Errno == 0 {
				seen = true
			}
		}
		if !seen || len(as) < 3 {
			t.Errorf("all: %d answers, target seen %v", len(as), seen)
		}
	})
	t.Run("audit records denials without values", func(t *testing.T) {
		h.audit.Flush()
		time.Sleep(150 * time.Millisecond)
		b, err := os.ReadFile(h.log)
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if !strings.Contains(log, "broker: denied { read:environ } for pid=") || !strings.Contains(log, "permissive=0") {
			t.Errorf("audit log lacks the environ denial:\n%s", log)
		}
		if strings.Contains(log, "hunter2") {
			t.Errorf("audit log holds environment contents")
		}
	})
}

// TestBadRequests sends malformed, oversized and truncated requests: each
// gets a JSON error with a 4xx (or 501) status — those net/http answers
// itself as well — and the broker keeps serving.
func TestBadRequests(t *testing.T) {
	requireRoot(t)
	h := startBroker(t, testPolicy, 0)
	post := func(body string) string {
		return "POST /v1/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	}
	big := `{"pids":[` + strings.Repeat("1,", 600000) + `1],"items":["status"]}`
	cases := []struct {
		name, raw string
		status    int
	}{
		{"malformed", post(`{"pids":[1,`), 400},
		{"not an object", post(`[1,2]`), 400},
		{"unknown field", post(`{"pids":[1],"items":["status"],"evil":1}`), 400},
		{"unknown item", post(`{"pids":[1],"items":["envron"]}`), 400},
		{"no items", post(`{"pids":[1],"items":[]}`), 400},
		{"negative pid", post(`{"pids":[-1],"items":["status"]}`), 400},
		{"both pids and all", post(`{"pids":[1],"all":true,"items":["status"]}`), 400},
		{"trailing data", post(`{"pids":[1],"items":["status"]} {}`), 400},
		{"oversized", post(big), 413},
		{"truncated body", "POST /v1/read HTTP/1.1\r\nHost: x\r\nX-Half-Close: 1\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"pids\":[1]", 400},
		{"wrong method", "GET /v1/read HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405},
		{"unknown endpoint", "GET /v2/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
		{"wrong content type", "POST /v1/read HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 415},
		{"duplicate key", post(`{"pids":[1],"items":["status"],"pids":[2]}`), 400},
		{"duplicate nested key", post(`{"pids":[1],"items":["mem"],"mem":[{"addr":1,"len":2,"addr":3}]}`), 400},
		{"unclean path", "GET /v1/../v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
		{"double slash", "GET //v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
		{"bad request line", "GARBAGE\r\n\r\n", 400},
		{"no Host", "GET /v1/whoami HTTP/1.1\r\nConnection: close\r\n\r\n", 400},
		{"bad header", "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400},
		{"header too large", "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431},
		{"unsupported transfer coding", "POST /v1/read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"unmet expectation", "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nExpect: something\r\nConnection: close\r\n\r\n", 417},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := rawRequest(t, h.socket, tc.raw)
			if code != tc.status {
				t.Fatalf("status = %d, want %d\n%s", code, tc.status, trunc(resp))
			}
			if !strings.Contains(resp, "\r\nContent-Type: application/json\r\n") || !strings.Contains(resp, `{"error":{"code":`) {
				t.Errorf("no JSON error body:\n%s", trunc(resp))
			}
		})
	}
	code, resp := rawRequest(t, h.socket, post(`{"pids":[1],"items":["status"]}`))
	if code != 200 || !strings.Contains(resp, `"done":true`) {
		t.Fatalf("broker stopped serving after bad requests: %d\n%s", code, trunc(resp))
	}
}

func trunc(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}
