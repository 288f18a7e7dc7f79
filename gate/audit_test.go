package gate_test

import (
	"bufio"
	"context"
	"fmt"
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
// serial numbers run from 1, and, under each limit, the decisions
// written are those within their caller's burst and the budget, and
// every other decision is in the summary of its caller (past its burst)
// or of the budget, by result and generation.
func TestAuditorRoundTrip(t *testing.T) {
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
	for _, lim := range []struct{ burst, budget int }{{0, 0}, {3, 0}, {0, 40}, {3, 5}, {30, 40}} {
		for _, format := range []gate.AuditFormat{gate.AuditAVC, gate.AuditJSON} {
			t.Run(fmt.Sprintf("burst=%d,budget=%d,%s", lim.burst, lim.budget, format), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				a, err := gate.NewAuditor(gate.AuditConfig{Path: path, Format: format, Burst: lim.burst, Budget: lim.budget, Interval: time.Hour})
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
				// What the limits let through, decision by decision.
				type key struct {
					scope   audit.Scope
					uid     uint32
					granted bool
					gen     uint64
				}
				var want []audit.Record
				wantSum := map[key]uint64{}
				perCaller, total := map[uint32]int{}, 0
				for i := range events {
					ev := &events[i]
					switch {
					case lim.burst > 0 && perCaller[ev.UID] >= lim.burst:
						wantSum[key{audit.ScopeCaller, ev.UID, ev.Granted, ev.Generation}]++
					case lim.budget > 0 && total >= lim.budget:
						wantSum[key{audit.ScopeAll, 0, ev.Granted, ev.Generation}]++
					default:
						perCaller[ev.UID]++
						total++
						want = append(want, expectedRecord(ev, format))
					}
				}
				recs := parseLog(t, path)
				gotSum := map[key]uint64{}
				var summaries, summarised uint64
				for i, r := range recs {
					if r.Serial != uint64(i+1) {
						t.Fatalf("record %d has serial %d", i+1, r.Serial)
					}
					if r.IsSummary() {
						if r.Time.IsZero() || r.Subject.PID != 0 || r.Rule != "" || r.Access != "" || r.Item != "" || r.Target.UID != 0 ||
							r.Scope == audit.ScopeAll && r.Subject.UID != 0 || r.Scope == audit.ScopeKey {
							t.Errorf("summary %+v", r)
						}
						gotSum[key{r.Scope, r.Subject.UID, r.Granted, r.Generation}] += r.Suppressed
						summaries++
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
				}
				if len(want) > 0 {
					t.Errorf("%d decisions never written", len(want))
				}
				if !reflect.DeepEqual(gotSum, wantSum) {
					t.Errorf("decisions summarised:\n%v\nwant\n%v", gotSum, wantSum)
				}
				st := a.Stats()
				if st.Events != uint64(len(events)) || st.Records != uint64(len(recs)) || st.Summaries != summaries || st.Suppressed != summarised ||
					st.Events != st.Records-st.Summaries+st.Suppressed || (lim.burst > 0 || lim.budget > 0) != (summarised > 0) {
					t.Errorf("stats %+v: %d events, %d records, %d summaries of %d decisions", st, len(events), len(recs), summaries, summarised)
				}
			})
		}
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

// TestAuditBudget: callers of many uids (a container's subuid range, and
// a few that decide much more often) decide as fast as they can for five
// intervals. Whatever the number of uids, each interval has at most
// Budget records of decisions, at most 2×(Budget/Burst) summaries of
// callers and 2 of the budget (two results, one policy generation): the
// bound docs/api.md derives the log's size from. Every decision is
// written or counted in a summary.
func TestAuditBudget(t *testing.T) {
	const burst, budget, windows, perWindow = 5, 40, 5, 20000
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := gate.NewAuditor(gate.AuditConfig{Path: path, Burst: burst, Budget: budget, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	items := policy.Items()
	start := time.Now().Add(time.Hour) // the flusher's clock never ends a window
	for w := range windows {
		for i := range perWindow {
			uid := uint32(100000 + rng.IntN(65536))
			if rng.IntN(2) == 0 {
				uid = uint32(1000 + rng.IntN(3))
			}
			ev := gate.AuditEvent{
				Time:    start.Add(time.Duration(w)*time.Second + time.Duration(i)*40*time.Microsecond),
				Granted: rng.IntN(4) == 0, Item: items[rng.IntN(len(items))], PID: 1 + rng.IntN(1<<22), Comm: "flood",
				UID: uid, TPID: 1 + rng.IntN(1<<22), TComm: "target", Generation: 1,
			}
			a.Record(&ev)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	recs := parseLog(t, path)
	var decisions, callerSums, allSums, intervals int
	var written, summarised uint64
	inSummaries := false
	end := func() { // an interval ends with its summaries
		if decisions > budget || callerSums > 2*(budget/burst) || allSums > 2 {
			t.Errorf("interval %d: %d decisions, %d summaries of callers, %d of the budget (budget %d, burst %d)",
				intervals+1, decisions, callerSums, allSums, budget, burst)
		}
		intervals++
		decisions, callerSums, allSums = 0, 0, 0
	}
	for _, r := range recs {
		if !r.IsSummary() {
			if inSummaries {
				end()
				inSummaries = false
			}
			decisions++
			written++
			continue
		}
		inSummaries = true
		summarised += r.Suppressed
		switch r.Scope {
		case audit.ScopeCaller:
			callerSums++
		case audit.ScopeAll:
			allSums++
		default:
			t.Errorf("summary of scope %d: %+v", r.Scope, r)
		}
	}
	end()
	if intervals != windows || written+summarised != windows*perWindow {
		t.Errorf("%d intervals, %d decisions written and %d summarised, want %d intervals and %d decisions", intervals, written, summarised, windows, windows*perWindow)
	}
	st := a.Stats()
	if st.Events != windows*perWindow || st.Events != st.Records-st.Summaries+st.Suppressed {
		t.Errorf("stats %+v", st)
	}
	t.Logf("%d decisions in %d intervals: %d records written (%d summaries), %d decisions summarised", st.Events, intervals, st.Records, st.Summaries, st.Suppressed)
}

// TestAuditRecordSize: the longest records docs/api.md derives the log's
// bound from — R, an AVC-shaped decision under the default policy
// without labels, and S, a summary (AVC and JSON) — with every number at
// its widest and command names of 15 bytes that are written as hex.
func TestAuditRecordSize(t *testing.T) {
	const docR, docS, docSJSON = 290, 142, 187 // docs/api.md, "Audit log and metrics"
	pol, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for i := range pol.NumRules() {
		ref, _ := pol.Rule(policy.RuleID(i))
		rules = append(rules, ref.String(), "none("+ref.String()+")")
	}
	at := time.Unix(4102444799, 999e6) // 2099
	side := audit.Process{PID: 4194304, Comm: strings.Repeat("\x01", 15), UID: 4294967294}
	r := 0
	for _, it := range policy.Items() {
		access, name := it.AuditAccess()
		for _, rule := range rules {
			rec := audit.Record{Time: at, Serial: 1<<64 - 1, Access: access, Item: name, Subject: side, Target: side, Rule: rule, Generation: 1<<64 - 1}
			r = max(r, len(audit.AppendAVC(nil, &rec))+1)
		}
	}
	sum := audit.Record{Time: at, Serial: 1<<64 - 1, Granted: true, Scope: audit.ScopeCaller, Subject: audit.Process{UID: 4294967294}, Suppressed: 1<<64 - 1, Generation: 1<<64 - 1}
	s, sJSON := len(audit.AppendAVC(nil, &sum))+1, len(audit.AppendJSON(nil, &sum))+1
	if r != docR || s != docS || sJSON != docSJSON {
		t.Errorf("the longest records are R = %d, S = %d (JSON %d) bytes; docs/api.md says %d, %d (%d): update its bound", r, s, sJSON, docR, docS, docSJSON)
	}
}
