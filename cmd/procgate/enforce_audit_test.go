package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

// TestDenialRecords: the program's denials become records in the
// broker's format with the writer bpf, the whole access class, and the
// policy rule that refused (from the rule set of the denial's
// generation); `procgate policy why` reads them back; a caller's flood
// is rate-limited as at the broker.
func TestDenialRecords(t *testing.T) {
	dir := t.TempDir()
	polPath := filepath.Join(dir, "agent.pol")
	if err := os.WriteFile(polPath, []byte("subject others { not uid 0; }\ntarget agent { uid 3333; }\ntarget any { }\nprotect agent : read;\ndeny others any : attach;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := loadPolicies([]string{polPath}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pol.KernelRules()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit.log")
	aud, err := gate.NewAuditor(gate.AuditConfig{Path: logPath, Burst: 2, Interval: time.Hour, Writer: audit.TagBPF})
	if err != nil {
		t.Fatal(err)
	}
	da := newDenialAuditor(aud)
	da.loaded(rs)
	// protect agent is hashed (agent is one uid), deny others any is of
	// class bits.
	l := rs.Layout()
	deny := rs.Rules[1]
	if !l.Hashed[0] || l.Hashed[1] {
		t.Fatalf("layout %+v", l)
	}
	now := time.Unix(1796000000, 0)
	for _, dn := range []bpflsm.Denial{
		{Generation: rs.Generation, PID: 10, TGID: 10, TPID: 20, TTGID: 20, UID: 0, TUID: 3333, Access: 0, Rule: 1, Comm: "cat", TComm: "ssh-agent"},
		{Generation: rs.Generation, PID: 11, TGID: 11, TPID: 21, TTGID: 21, UID: 1000, TUID: 1000, Access: 1, Traceme: true, SubjectClasses: 1 << l.Bit[deny.Subject], TargetClasses: 1 << l.Bit[deny.Target], Comm: "gdb", TComm: "a.out"},
		{Generation: rs.Generation + 7, PID: 12, TGID: 12, TPID: 22, TTGID: 22, UID: 0, TUID: 3333, TargetClasses: 1, Comm: "cat", TComm: "x"},
		{Generation: rs.Generation, PID: 13, TGID: 13, TPID: 20, TTGID: 20, UID: 0, TUID: 3333, Rule: 1, Comm: "cat", TComm: "ssh-agent"},
	} {
		ev := da.event(dn, now)
		aud.Record(&ev)
	}
	if err := aud.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		`bpf: denied { read } for pid=10 comm="cat" uid=0 tpid=20 tcomm="ssh-agent" tuid=3333 rule=protect@` + polPath + `:4 gen=1 permissive=0`,
		`bpf: denied { attach } for pid=11 comm="gdb" uid=1000 tpid=21 tcomm="a.out" tuid=1000 rule=deny@` + polPath + `:5 gen=1 permissive=0`,
		// A generation this process did not load: no rule to name.
		`bpf: denied { read } for pid=12 comm="cat" uid=0 tpid=22 tcomm="x" tuid=3333 rule=none gen=8 permissive=0`,
		// Uid 0's third denial in the interval, past its burst of 2.
		`bpf: denied { * } for uid=0 suppressed=1 gen=1`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(lines), len(want), b)
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, want[i]) {
			t.Errorf("record %d:\n%s\nwant …%s", i, l, want[i])
		}
		r, err := policy.ParseAuditLine(l)
		if err != nil || r.Record.Writer != audit.TagBPF {
			t.Errorf("record %d does not parse back as the program's: %+v, %v", i, r, err)
		}
	}
	var why bytes.Buffer
	if err := runWhy(&why, lines[0], nil); err != nil || !strings.Contains(why.String(), "denied read: pid 10") ||
		!strings.Contains(why.String(), "procgate's BPF LSM program") || !strings.Contains(why.String(), "protect agent : read") {
		t.Errorf("policy why of a program's record: %v\n%s", err, why.String())
	}

	var m bytes.Buffer
	if err := da.writeMetrics(&m, filepath.Join(dir, "nothing-pinned")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"procgate_bpf_denials_total 0", "procgate_bpf_denials_unreported_total 0", `procgate_bpf_reloads_total{result="ok"} 0`, "procgate_audit_records_total 4", "procgate_audit_suppressed_total 1"} {
		if !strings.Contains(m.String(), name+"\n") {
			t.Errorf("metrics lack %q:\n%s", name, m.String())
		}
	}
}
