package gate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

func TestMaskStat(t *testing.T) {
	// 52 fields; the comm holds spaces and a parenthesis.
	f := make([]string, 50)
	for i := range f {
		f[i] = "7"
	}
	in := "42 (a b) c) " + strings.Join(f, " ") + "\n"
	out := string(gate.MaskStat([]byte(in)))
	got := strings.Fields(out[strings.LastIndexByte(out, ')')+1:])
	tests := []struct {
		field int
		want  string
	}{
		{3, "7"}, {22, "7"}, {25, "7"}, {26, "1"}, {27, "1"}, {28, "0"}, {29, "0"}, {30, "0"},
		{31, "7"}, {35, "0"}, {44, "7"}, {45, "0"}, {51, "0"}, {52, "0"},
	}
	for _, tc := range tests {
		if g := got[tc.field-3]; g != tc.want {
			t.Errorf("field %d = %s, want %s", tc.field, g, tc.want)
		}
	}
	if !strings.HasPrefix(out, "42 (a b) c) ") || !strings.HasSuffix(out, "\n") {
		t.Errorf("MaskStat changed the frame: %q", out)
	}
}

func TestAppendString(t *testing.T) {
	tests := []string{"", "plain", "tab\tnl\n\"q\" \\", "\x00\x01\x1f", "<&>", "bad \xff utf8", "é ✓ \u2028"}
	for _, s := range tests {
		b := gate.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("AppendString(%q) = %s: not JSON: %v", s, b, err)
			continue
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); back != want {
			t.Errorf("AppendString(%q) round-trips to %q", s, back)
		}
	}
}

func TestAuditFormat(t *testing.T) {
	tests := []struct {
		name   string
		format gate.AuditFormat
		ev     gate.AuditEvent
		want   []string
	}{
		{"avc denial", gate.AuditAVC, gate.AuditEvent{Item: policy.ItemEnviron, PID: 10, Comm: "lsof", UID: 1000, TPID: 20, TComm: "ssh agent", TUID: 0, Rule: "none"},
			[]string{"): broker: denied { read:environ } for pid=10 comm=\"lsof\" uid=1000 tpid=20 tcomm=737368206167656E74 tuid=0 rule=none gen=0 permissive=0\n"}},
		{"avc attach grant", gate.AuditAVC, gate.AuditEvent{Granted: true, Item: policy.ItemAttach, PID: 1, Comm: "gdb", Rule: "allow@a.pol:3+auditallow@a.pol:4"},
			[]string{"broker: granted { attach } for pid=1", "rule=allow@a.pol:3+auditallow@a.pol:4 gen=0\n"}},
		{"avc contexts, an attach-class item", gate.AuditAVC, gate.AuditEvent{Item: policy.ItemMem, PID: 5, Comm: "gdb", UID: 7, SContext: "u:r:gdb_t:s0", TPID: 6, TComm: "app", TUID: 8, TContext: "u:r:app_t:s0"},
			[]string{`broker: denied { attach:mem } for pid=5 comm="gdb" uid=7 scontext=u:r:gdb_t:s0 tpid=6 tcomm="app" tuid=8 tcontext=u:r:app_t:s0 rule=none`}},
		{"json", gate.AuditJSON, gate.AuditEvent{Item: policy.ItemIO, PID: 1, Comm: "x", Reason: "no rule"},
			[]string{`"result":"denied"`, `"item":"io"`, `"reason":"no rule"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			a, err := gate.NewAuditor(gate.AuditConfig{Path: p, Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			tc.ev.Time = time.Unix(1700000000, 123e6)
			a.Record(&tc.ev)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			for _, w := range tc.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("record %q lacks %q", b, w)
				}
			}
		})
	}
}

func TestParseItem(t *testing.T) {
	for _, it := range policy.Items() {
		got, err := gate.ParseItem(it.String())
		if err != nil || got != it {
			t.Errorf("ParseItem(%q) = %v, %v", it, got, err)
		}
	}
	if _, err := gate.ParseItem("envron"); err == nil || !strings.Contains(err.Error(), "environ") {
		t.Errorf("ParseItem(envron) = %v, want a suggestion", err)
	}
}
