package gate_test

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

// TestAuditorRoundTrip: every record the Auditor writes, AVC-shaped and
// JSON, decisions and rate-limit summaries, parses back to the fields it
// was given (the AVC shape carries no reason; JSON strings are UTF-8),
// serial numbers run from 1, and the decisions written plus those
// summarised are all the decisions, key by key.
func TestAuditorRoundTrip(t *testing.T) {
	const burst = 3
	rng := rand.New(rand.NewPCG(3, 5))
	items := policy.Items()
	texts := []string{"sleep", "ssh agent", `a"b`, "CAFE", "\x00\xff", "é", "u:r:sshd_t:s0", "firefox (enforce)", ""}
	rules := []string{"", "none", "none(allow@default.pol:25)", "allow@/etc/procgate/a b.pol:3+auditallow@c++.pol:4", "protect@p.pol:9", "none+dontaudit@p.pol:2"}
	start := time.Now().Truncate(time.Millisecond) // near now: the flusher starts no new window
	events := make([]gate.AuditEvent, 2000)
	for i := range events {
		events[i] = gate.AuditEvent{
			Time: start.Add(time.Duration(i) * time.Millisecond), Granted: rng.IntN(2) == 0, Item: items[rng.IntN(len(items))],
			PID: rng.IntN(1 << 22), Comm: texts[rng.IntN(len(texts))], UID: uint32(rng.IntN(3)), SContext: texts[rng.IntN(len(texts))],
			TPID: rng.IntN(1 << 22), TComm: texts[rng.IntN(len(texts))], TUID: uint32(rng.IntN(3)), TContext: texts[rng.IntN(len(texts))],
			Rule: rules[rng.IntN(len(rules))], Reason: texts[rng.IntN(len(texts))], Generation: uint64(1 + rng.IntN(2)),
		}
	}
	for _, format := range []gate.AuditFormat{gate.AuditAVC, gate.AuditJSON} {
		t.Run(format.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			a, err := gate.NewAuditor(gate.AuditConfig{Path: path, Format: format, Burst: burst, Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for i := range events {
				ev := events[i]
				a.Record(&ev)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			recs := parseLog(t, path)
			type key struct {
				uid, tuid uint32
				access    string
				item      string
				granted   bool
				gen       uint64
			}
			total, written := map[key]int{}, map[key]int{}
			var want []audit.Record
			for i := range events {
				ev := &events[i]
				r := expectedRecord(ev, format)
				k := key{ev.UID, ev.TUID, r.Access, r.Item, ev.Granted, ev.Generation}
				if total[k]++; total[k] <= burst {
					want = append(want, r)
				}
			}
			var summarised uint64
			for i, r := range recs {
				if r.Serial != uint64(i+1) {
					t.Fatalf("record %d has serial %d", i+1, r.Serial)
				}
				if r.IsSummary() {
					if r.Time.IsZero() || r.Subject.PID != 0 || r.Rule != "" {
						t.Errorf("summary %+v", r)
					}
					written[key{r.Subject.UID, r.Target.UID, r.Access, r.Item, r.Granted, r.Generation}] += int(r.Suppressed)
					summarised += r.Suppressed
					continue
				}
				if len(want) == 0 {
					t.Fatalf("record %d is a decision past the last one written: %+v", i+1, r)
				}
				w := want[0]
				want = want[1:]
				w.Serial = r.Serial
				if !reflect.DeepEqual(r, w) {
					t.Fatalf("record %d parses to\n%+v\nwant\n%+v", i+1, r, w)
				}
				written[key{r.Subject.UID, r.Target.UID, r.Access, r.Item, r.Granted, r.Generation}]++
			}
			if len(want) > 0 {
				t.Errorf("%d decisions never written", len(want))
			}
			if !reflect.DeepEqual(written, total) {
				t.Errorf("decisions per key, written or summarised:\n%v\nrecorded:\n%v", written, total)
			}
			st := a.Stats()
			if st.Events != uint64(len(events)) || st.Records != uint64(len(recs)) || st.Suppressed != summarised || summarised == 0 {
				t.Errorf("stats %+v: %d events, %d records, %d summarised", st, len(events), len(recs), summarised)
			}
		})
	}
}

// expectedRecord is what the record of ev says in a format.
func expectedRecord(ev *gate.AuditEvent, format gate.AuditFormat) audit.Record {
	access := audit.Read
	if ev.Item.Attach() {
		access = audit.Attach
	}
	r := audit.Record{
		Time: ev.Time.UTC(), Granted: ev.Granted, Access: access, Item: ev.Item.String(),
		Subject: audit.Process{PID: ev.PID, Comm: ev.Comm, UID: ev.UID, Context: ev.SContext},
		Target:  audit.Process{PID: ev.TPID, Comm: ev.TComm, UID: ev.TUID, Context: ev.TContext},
		Rule:    ev.Rule, Generation: ev.Generation, Reason: ev.Reason,
	}
	if r.Rule == "" {
		r.Rule = "none"
	}
	if format == gate.AuditAVC {
		r.Reason = ""
		return r
	}
	for _, s := range []*string{&r.Subject.Comm, &r.Target.Comm, &r.Subject.Context, &r.Target.Context, &r.Reason} {
		var b strings.Builder
		for _, c := range *s { // U+FFFD for each byte that is not UTF-8
			b.WriteRune(c)
		}
		*s = b.String()
	}
	return r
}

// parseLog parses every line of an audit log.
func parseLog(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := audit.Parse(sc.Text())
		if err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestAuditGeneration: the gate's records carry the generation of the
// policy that decided, across a reload, and the rules that decided.
func TestAuditGeneration(t *testing.T) {
	const src = "subject everyone { }\ntarget any_process { }\nallow everyone any_process : read { status };\nauditallow everyone any_process : read { status };\n"
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := gate.NewAuditor(gate.AuditConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var pols []*policy.Policy
	for range 2 {
		p, err := policy.Load("g.pol", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		pols = append(pols, p)
	}
	g, err := gate.New(gate.Config{Policy: pols[0], Audit: a})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c, err := g.NewCaller(os.Getpid(), -1, uint32(os.Getuid()), uint32(os.Getgid()), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range pols {
		g.SetPolicy(p)
		req := &gate.Request{PIDs: []int{os.Getpid()}, Items: []gate.Item{policy.ItemStatus}}
		if err := g.Read(context.Background(), c, req)(func(*gate.ProcResult) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	recs := parseLog(t, path)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(recs), recs)
	}
	for i, r := range recs {
		if r.Generation != pols[i].Generation() || !r.Granted || r.Item != "status" || r.Subject.PID != os.Getpid() ||
			r.Rule != "allow@g.pol:3+auditallow@g.pol:4" {
			t.Errorf("record %d = %+v, want generation %d", i+1, r, pols[i].Generation())
		}
	}
	if pols[0].Generation() == pols[1].Generation() {
		t.Error("two compiled policies share a generation")
	}
}
