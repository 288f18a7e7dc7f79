package gate_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// auditAll grants and audits status of every process to everyone.
const auditAll = "subject everyone { }\ntarget any_process { }\nallow everyone any_process : read { status io };\nauditallow everyone any_process : read { status };\n"

// auditedGate opens a gate whose audit log is cfg's, for the test
// process as caller.
func auditedGate(t *testing.T, src string, cfg gate.AuditConfig) (*gate.Gate, *gate.Caller, *gate.Auditor) {
	t.Helper()
	a, err := gate.NewAuditor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	g, err := gate.New(gate.Config{Policy: compile(t, src), Audit: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c, err := g.NewCaller(os.Getpid(), -1, uint32(os.Getuid()), uint32(os.Getgid()), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return g, c, a
}

// TestAuditRecordBeforeAnswer: when the gate hands out an answer, the
// records of its audited decisions are already in the log file — for a
// request of one chunk and for one of every process (many chunks read in
// parallel) — and the log holds whole lines only.
func TestAuditRecordBeforeAnswer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	g, c, a := auditedGate(t, auditAll, gate.AuditConfig{Path: path})
	// recorded returns the pids whose status grant the log records in
	// whole lines. A record another chunk is writing meanwhile may be
	// seen in part: a read(2) of a regular file is not atomic with a
	// write(2) that crosses a page, so the last line may be cut until
	// that write ends (whole lines are checked after the flush).
	recorded := func() map[int]bool {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = b[:bytes.LastIndexByte(b, '\n')+1]
		pids := map[int]bool{}
		for line := range strings.Lines(string(b)) {
			r, err := audit.Parse(strings.TrimSuffix(line, "\n"))
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if r.Granted && r.Item == "status" {
				pids[r.Target.PID] = true
			}
		}
		return pids
	}
	for _, req := range []*gate.Request{
		{PIDs: []int{os.Getpid(), 1}, Items: []gate.Item{policy.ItemStatus, policy.ItemIO}},
		{All: true, Items: []gate.Item{policy.ItemStatus}},
	} {
		// A process the policy's auditallow does not cover (a
		// non-dumpable one) has no record at all; every other answer must
		// find its record in the log when it leaves.
		var early []int
		answers := 0
		err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error {
			if r.Denial != nil || r.Items[0].Denial != nil {
				return nil // gone meanwhile
			}
			answers++
			if !recorded()[r.PID] {
				early = append(early, r.PID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("after the flush, the log ends in the middle of a line: %q, %v", b[max(0, len(b)-80):], err)
		}
		final := recorded()
		n := 0
		for _, pid := range early {
			if final[pid] {
				t.Errorf("the answer for pid %d left before its record", pid)
			}
		}
		for range final {
			n++
		}
		if answers == 0 || n == 0 || !final[os.Getpid()] {
			t.Fatalf("%d answers and %d records (this process's: %v) for %+v", answers, n, final[os.Getpid()], req)
		}
		t.Logf("%d answers, %d records", answers, n)
	}
	if st := a.Stats(); st.Events == 0 || st.Records != st.Events {
		t.Errorf("stats %+v", st)
	}
}

// TestAuditWholeRecordsToPipe: on a pipe (standard error read by
// journald), every write holds whole records and at most PIPE_BUF bytes,
// so every read of the pipe ends with a record: a record is never cut,
// nor interleaved with another writer's line. 20,000 records go through
// the buffer's own writes (large buffer, the 100 ms flusher) and Close.
func TestAuditWholeRecordsToPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, err := gate.NewAuditor(gate.AuditConfig{Path: "pipe", File: w})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		reads, cut int
		data       []byte
	}
	done := make(chan result)
	go func() {
		var res result
		buf := make([]byte, 1<<20)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				res.reads++
				if buf[n-1] != '\n' {
					res.cut++
				}
				res.data = append(res.data, buf[:n]...)
			}
			if err != nil {
				done <- res
				return
			}
		}
	}()
	const n = 20000
	for i := range n {
		a.Record(&gate.AuditEvent{Time: time.Now(), Granted: true, Item: policy.ItemStatus, PID: 1 + i, Comm: "reader", TPID: 2 + i, TComm: "target", Rule: "allow@p.pol:1", Generation: 1})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.cut > 0 {
		t.Errorf("%d of %d reads of the pipe ended in the middle of a record", res.cut, res.reads)
	}
	lines := bytes.Split(bytes.TrimSuffix(res.data, []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		rec, err := audit.Parse(string(l))
		if err != nil || rec.Serial != uint64(i+1) {
			t.Fatalf("line %d: %q: %v", i+1, l, err)
		}
	}
	t.Logf("%d records in %d reads", n, res.reads)
}

// TestAuditWriteFailure: when the log cannot be written (a full disk:
// /dev/full), an answer whose record was not written does not leave —
// the request fails —, the lost records are counted, and a request with
// no audited decision is still answered.
func TestAuditWriteFailure(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	g, c, a := auditedGate(t, auditAll, gate.AuditConfig{Path: "/dev/full", File: full})
	emitted := 0
	err = g.Read(context.Background(), c, &gate.Request{PIDs: []int{os.Getpid()}, Items: []gate.Item{policy.ItemStatus}})(func(*gate.ProcResult) error {
		emitted++
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "audit log") || emitted != 0 {
		t.Errorf("an audited read with the log full: %d answers, error %v; want none and an audit log error", emitted, err)
	}
	if st := a.Stats(); st.Lost == 0 {
		t.Errorf("stats %+v: no record counted lost", st)
	}
	got := readOne(t, g, c, []int{os.Getpid()}, policy.ItemIO) // granted, not audited
	if r := got[os.Getpid()]; r == nil || r.Items[0].Denial != nil {
		t.Errorf("an unaudited read with the log full: %+v", r)
	}
	if err := a.Flush(); err == nil || !errors.Is(err, unix.ENOSPC) {
		t.Errorf("Flush after a failed write: %v, want ENOSPC", err)
	}
}

// TestAuditGrants: with AuditConfig.Grants, every item the policy grants
// beyond what the kernel gives the caller has a record naming the rule
// that granted it — io of another uid's process, stat_full, and stat
// served unmasked under stat_full's rule —, and items the kernel gives
// the caller itself (status) have none; without it, no grant has a
// record.
func TestAuditGrants(t *testing.T) {
	testenv.RequireRoot(t, "runs the caller and the target as other uids")
	const src = "option default_audit none;\nsubject everyone { }\ntarget any_process { }\nallow everyone any_process : read { status io stat_full };\n"
	callerPID, _ := startHelper(t, false, 41011)
	targetPID, _ := startHelper(t, false, 41012)
	items := []gate.Item{policy.ItemStatus, policy.ItemIO, policy.ItemStat, policy.ItemStatFull, policy.ItemEnviron}
	for _, grants := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "audit.log")
		a, err := gate.NewAuditor(gate.AuditConfig{Path: path, Grants: grants})
		if err != nil {
			t.Fatal(err)
		}
		g, err := gate.New(gate.Config{Policy: compile(t, src), Audit: a})
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.NewCaller(callerPID, -1, 41011, 41011, "")
		if err != nil {
			t.Fatal(err)
		}
		got := readOne(t, g, c, []int{targetPID}, items...)
		c.Close()
		g.Close()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		r := got[targetPID]
		if r == nil || r.Denial != nil {
			t.Fatalf("answer %+v", r)
		}
		for i, it := range items {
			granted := it != policy.ItemEnviron
			if ir := r.Items[i]; (ir.Denial == nil) != granted || it == policy.ItemStat && ir.Masked {
				t.Errorf("%s: %+v", it, ir)
			}
		}
		rules := map[string]string{}
		for _, rec := range parseLog(t, path) {
			if !rec.Granted || rec.Subject.PID != callerPID || rec.Target.PID != targetPID {
				t.Errorf("record %+v", rec)
			}
			rules[rec.Item] = rec.Rule
		}
		want := map[string]string{}
		if grants {
			want = map[string]string{"io": "allow@t.pol:4", "stat_full": "allow@t.pol:4", "stat": "allow@t.pol:4"}
		}
		if len(rules) != len(want) {
			t.Errorf("grants audited %v: records for %v, want %v", grants, rules, want)
		}
		for it, rule := range want {
			if !strings.HasPrefix(rules[it], rule) {
				t.Errorf("grants audited %v: record for %s names rule %q, want %s", grants, it, rules[it], rule)
			}
		}
	}
}
