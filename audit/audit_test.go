package audit_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/audit"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 316e6, time.UTC)

// The AVC shape, field by field, as the broker has always written it,
// plus gen=.
func TestAppendAVC(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    audit.Record
		want string
	}{
		{"denial", audit.Record{Time: t0, Serial: 7, Access: "read", Item: "io", Subject: audit.Process{PID: 27551, Comm: "procgate", UID: 65534}, Target: audit.Process{PID: 27544, Comm: "sleep"}, Rule: "none(allow@default.pol:25)", Generation: 3, Reason: "not written"},
			`audit(1795867200.316:7): broker: denied { read:io } for pid=27551 comm="procgate" uid=65534 tpid=27544 tcomm="sleep" tuid=0 rule=none(allow@default.pol:25) gen=3 permissive=0`},
		{"grant of the attach operation, no header", audit.Record{Granted: true, Access: "attach", Item: "attach", Subject: audit.Process{PID: 1, Comm: "gdb"}, Rule: "allow@a.pol:3+auditallow@a.pol:4", Generation: 1},
			`broker: granted { attach } for pid=1 comm="gdb" uid=0 tpid=0 tcomm="" tuid=0 rule=allow@a.pol:3+auditallow@a.pol:4 gen=1`},
		{"contexts, an attach-class item", audit.Record{Access: "attach", Item: "mem", Subject: audit.Process{PID: 5, Comm: "gdb", UID: 7, Context: "u:r:gdb_t:s0"}, Target: audit.Process{PID: 6, Comm: "app", UID: 8, Context: "u:r:app_t:s0"}},
			`broker: denied { attach:mem } for pid=5 comm="gdb" uid=7 scontext=u:r:gdb_t:s0 tpid=6 tcomm="app" tuid=8 tcontext=u:r:app_t:s0 rule=none gen=0 permissive=0`},
		{"comm with a space, hex", audit.Record{Access: "read", Item: "environ", Subject: audit.Process{PID: 10, Comm: "lsof", UID: 1000}, Target: audit.Process{PID: 20, Comm: "ssh agent"}, Rule: "none"},
			`broker: denied { read:environ } for pid=10 comm="lsof" uid=1000 tpid=20 tcomm=737368206167656E74 tuid=0 rule=none gen=0 permissive=0`},
		{"AppArmor label with its mode, a hex-looking label", audit.Record{Granted: true, Access: "read", Item: "status", Subject: audit.Process{Context: "firefox (enforce)"}, Target: audit.Process{Context: "CAFE"}, Rule: "allow@p.pol:1"},
			`broker: granted { read:status } for pid=0 comm="" uid=0 scontext=66697265666F782028656E666F72636529 tpid=0 tcomm="" tuid=0 tcontext="CAFE" rule=allow@p.pol:1 gen=0`},
		{"a policy file with a space", audit.Record{Granted: true, Access: "read", Item: "fd", Rule: "allow@my p.pol:2"},
			`broker: granted { read:fd } for pid=0 comm="" uid=0 tpid=0 tcomm="" tuid=0 rule=616C6C6F77406D7920702E706F6C3A32 gen=0`},
		{"summary", audit.Record{Time: t0, Serial: 8, Access: "read", Item: "io", Subject: audit.Process{UID: 65534}, Suppressed: 41, Generation: 3},
			`audit(1795867200.316:8): broker: denied { read:io } for uid=65534 tuid=0 suppressed=41 gen=3`},
		{"summary of a caller", audit.Record{Time: t0, Serial: 9, Scope: audit.ScopeCaller, Subject: audit.Process{UID: 65534}, Suppressed: 4180, Generation: 3},
			`audit(1795867200.316:9): broker: denied { * } for uid=65534 suppressed=4180 gen=3`},
		{"summary of every caller", audit.Record{Time: t0, Serial: 10, Granted: true, Scope: audit.ScopeAll, Suppressed: 12, Generation: 3},
			`audit(1795867200.316:10): broker: granted { * } for suppressed=12 gen=3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(audit.AppendAVC(nil, &tc.r)); got != tc.want {
				t.Errorf("AppendAVC =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestAppendJSON(t *testing.T) {
	r := audit.Record{Time: t0, Serial: 7, Access: "read", Item: "io", Subject: audit.Process{PID: 2, Comm: "a\xffb", UID: 3, Context: "u:r:t:s0"}, Target: audit.Process{PID: 4, Comm: "<x>"}, Rule: "none", Reason: "no rule", Generation: 9}
	want := `{"time":"2026-11-28T12:00:00.316Z","serial":7,"result":"denied","access":"read","item":"io","pid":2,"comm":"a\ufffdb","uid":3,"scontext":"u:r:t:s0","tpid":4,"tcomm":"\u003cx\u003e","tuid":0,"tcontext":"","rule":"none","reason":"no rule","gen":9,"permissive":0}`
	if got := string(audit.AppendJSON(nil, &r)); got != want {
		t.Errorf("AppendJSON =\n%s\nwant\n%s", got, want)
	}
	s := audit.Record{Granted: true, Access: "attach", Item: "attach", Subject: audit.Process{UID: 1}, Target: audit.Process{UID: 2}, Suppressed: 5, Generation: 1}
	want = `{"result":"granted","access":"attach","item":"attach","uid":1,"tuid":2,"suppressed":5,"gen":1}`
	if got := string(audit.AppendJSON(nil, &s)); got != want {
		t.Errorf("AppendJSON(summary) =\n%s\nwant\n%s", got, want)
	}
	for _, tc := range []struct {
		r    audit.Record
		want string
	}{
		{audit.Record{Time: t0, Serial: 9, Scope: audit.ScopeCaller, Subject: audit.Process{UID: 65534}, Suppressed: 4180, Generation: 3},
			`{"time":"2026-11-28T12:00:00.316Z","serial":9,"result":"denied","access":"*","item":"*","uid":65534,"suppressed":4180,"gen":3}`},
		{audit.Record{Granted: true, Scope: audit.ScopeAll, Suppressed: 12, Generation: 3},
			`{"result":"granted","access":"*","item":"*","suppressed":12,"gen":3}`},
	} {
		if got := string(audit.AppendJSON(nil, &tc.r)); got != tc.want {
			t.Errorf("AppendJSON(summary of scope %d) =\n%s\nwant\n%s", tc.r.Scope, got, tc.want)
		}
	}
}

// Records are found behind syslog and journal prefixes.
func TestParsePrefixes(t *testing.T) {
	want := audit.Record{Time: t0, Serial: 7, Access: "read", Item: "io", Subject: audit.Process{PID: 1, Comm: "a", UID: 2}, Target: audit.Process{PID: 3, Comm: "b", UID: 4}, Rule: "none", Generation: 5}
	avc := string(audit.AppendAVC(nil, &want))
	js := string(audit.AppendJSON(nil, &want))
	for _, prefix := range []string{"", "Nov 28 12:00:00 host procgate[812]: ", "2026-11-28T12:00:00+0000 host procgate[812]: ", "procgate[812]: "} {
		for _, line := range []string{avc, js, strings.TrimPrefix(avc, "audit(1795867200.316:7): ")} {
			got, err := audit.Parse(prefix + line + "\n")
			if err != nil {
				t.Errorf("Parse(%q): %v", prefix+line, err)
				continue
			}
			w := want
			if !strings.HasPrefix(line, "audit(") && !strings.HasPrefix(line, "{") {
				w.Time, w.Serial = time.Time{}, 0
			}
			if !equal(got, w) {
				t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", prefix+line, got, w)
			}
		}
	}
}

// Malformed lines give positioned errors.
func TestParseErrors(t *testing.T) {
	const ok = `broker: denied { read:io } for pid=1 comm="a" uid=2 tpid=3 tcomm="b" tuid=4 rule=none gen=5 permissive=0`
	if _, err := audit.Parse(ok); err != nil {
		t.Fatalf("Parse(%q): %v", ok, err)
	}
	for _, tc := range []struct {
		line string
		col  int
		msg  string
	}{
		{"", 1, "no audit record"},
		{"procgate: denied { read:io } for rule=none", 1, "no audit record"},
		{"type=AVC msg=audit(1.000:2): avc:  denied { ptrace } for pid=1", 30, `want "broker: " or "bpf: "`},
		{"audit(17x.000:1): broker: denied", 7, "want audit(SECONDS.MILLISECONDS:SERIAL)"},
		{"audit(1.00:1): broker: denied", 9, "three digits"},
		{"audit(1.000:x): broker: denied", 13, "serial number"},
		{"broker: maybe { read:io } for rule=none", 9, "want granted or denied"},
		{"broker: denied read:io for rule=none", 16, "want '{ ACCESS }'"},
		{"broker: denied { read:io for rule=none", 18, "unterminated"},
		{"broker: denied { write:io } for rule=none", 18, `access "write:io"`},
		{"broker: denied { read:IO } for rule=none", 18, `access "read:IO"`},
		{"broker: denied { read } for rule=none", 18, `access "read"`},
		{`{"writer":"kernel","result":"denied","access":"read","item":"read","pid":1,"comm":"a","uid":2,"tpid":3,"tcomm":"b","tuid":4,"rule":"none","gen":5}`, 11, `writer "kernel": want bpf`},
		{`{"result":"denied","access":"read","item":"read","pid":1,"comm":"a","uid":2,"tpid":3,"tcomm":"b","tuid":4,"rule":"none","gen":5}`, 43, `only a bpf record`},
		{"broker: denied { read:io } rule=none", 27, `want " for "`},
		{strings.Replace(ok, "pid=1", "pid=x", 1), 36, `pid="x": want a number`},
		{strings.Replace(ok, "uid=2", "uid=4294967296", 1), 51, "want a number below 2^32"},
		{strings.Replace(ok, `comm="a"`, `comm="a`, 1), 43, "unterminated quoted value"},
		{strings.Replace(ok, `comm="a"`, `comm="a"x`, 1), 46, "want a space"},
		{strings.Replace(ok, "rule=none", "rule=allow@x", 1), 82, "want effect@file:line"},
		{strings.Replace(ok, "rule=none", "rule=none(allow@x:0)", 1), 82, "bad line number"},
		{strings.Replace(ok, " gen=5", "", 1), len(ok) - 6 + 1, "no gen= field"},
		{strings.Replace(ok, " tpid=3", "", 1), len(ok) - 7 + 1, "no tpid= field"},
		{strings.Replace(ok, "permissive=0", "permissive=1", 1), 104, "no permissive mode"},
		{ok + " pid=9", len(ok) + 2, `field "pid" appears twice`},
		{ok + " value=hunter2", len(ok) + 2, `unknown field "value"`},
		{ok + " suppressed=3", 32, `a summary has no field "pid"`},
		{"broker: denied { read:io } for uid=1 tuid=2 suppressed=3 gen=1 reason=x", 64, `a summary has no field "reason"`},
		{ok + " =x", len(ok) + 2, "want key=value"},
		{"broker: denied { read:io } for uid=1 tuid=2 suppressed=0 gen=1", 56, "at least one decision"},
		{"broker: denied { read:io } for uid=1 tuid=2 suppressed=3", 57, "no gen= field"},
		{`{"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3}`, 79, `no "gen" field`},
		{`{"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1,"gen":2}`, 88, `field "gen" appears twice`},
		{`{"result":"denied","access":"read","item":"io","uid":"1","tuid":2,"suppressed":3,"gen":1}`, 54, `"uid": want a number`},
		{`{"result":"maybe","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1}`, 11, "want granted or denied"},
		{`{"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1} x`, 89, "text after the JSON object"},
		{`{"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1`, 87, "JSON"},
		{`{"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1,"value":"hunter2"}`, 88, `unknown field "value"`},
		{`{"serial":4,"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1}`, 11, "serial number without a time"},
		{`{"time":"yesterday","serial":4,"result":"denied","access":"read","item":"io","uid":1,"tuid":2,"suppressed":3,"gen":1}`, 9, "RFC 3339"},
		// Summaries of any access.
		{"broker: denied { * } for uid=1 tuid=2 suppressed=3 gen=1", 32, `a summary of any access has no field "tuid"`},
		{"broker: denied { * } for uid=1 gen=1", 37, "no suppressed= field"},
		{strings.Replace(ok, "{ read:io }", "{ * }", 1), 26, `a summary of any access has no field "pid"`},
		{"broker: denied { *:io } for uid=1 suppressed=3 gen=1", 18, `access "*:io"`},
		{`{"result":"denied","access":"*","item":"io","uid":1,"suppressed":3,"gen":1}`, 40, `a summary of any access ("*") has the item "*"`},
		{`{"result":"denied","access":"*","item":"*","uid":1,"tuid":2,"suppressed":3,"gen":1}`, 59, `a summary of any access has no field "tuid"`},
		{`{"result":"denied","access":"*","item":"*","suppressed":3}`, 58, `no "gen" field`},
		{`{"result":"denied","access":"*","item":"*","pid":1,"comm":"a","uid":2,"tpid":3,"tcomm":"b","tuid":4,"rule":"none","gen":5}`, 50, `a summary of any access has no field "pid"`},
	} {
		_, err := audit.Parse(tc.line)
		var se *audit.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", tc.line, err)
			continue
		}
		if se.Col != tc.col || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("Parse(%q) = column %d: %s\nwant column %d: …%s…", tc.line, se.Col, se.Msg, tc.col, tc.msg)
		}
	}
}

// vocab knows the items io and attach and the effects allow and
// auditallow.
type vocab struct{}

func (vocab) CheckItem(access, item string) error {
	if item != "io" && item != "attach" {
		return fmt.Errorf("unknown item %q", item)
	}
	return nil
}

func (vocab) CheckEffect(effect string) error {
	if effect != "allow" && effect != "auditallow" {
		return fmt.Errorf("unknown effect %q", effect)
	}
	return nil
}

func TestParseWithVocabulary(t *testing.T) {
	for _, tc := range []struct {
		line string
		col  int
		msg  string
	}{
		{`broker: denied { read:envron } for uid=1 tuid=2 suppressed=3 gen=1`, 18, `unknown item "envron"`},
		{`{"result":"denied","access":"read","item":"envron","uid":1,"tuid":2,"suppressed":3,"gen":1}`, 43, `unknown item "envron"`},
		{`broker: granted { read:io } for pid=1 comm="a" uid=2 tpid=3 tcomm="b" tuid=4 rule=allow@a:1+maybe@a:2 gen=5`, 83, `unknown effect "maybe"`},
		{`broker: denied { read:io } for pid=1 comm="a" uid=2 tpid=3 tcomm="b" tuid=4 rule=none(deny@a:1) gen=5`, 82, `unknown effect "deny"`},
	} {
		if _, err := audit.Parse(tc.line); err != nil {
			t.Errorf("Parse(%q) without a vocabulary: %v", tc.line, err)
		}
		_, err := audit.ParseWith(tc.line, vocab{})
		var se *audit.SyntaxError
		if !errors.As(err, &se) || se.Col != tc.col || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("ParseWith(%q) = %v, want column %d: …%s…", tc.line, err, tc.col, tc.msg)
		}
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want audit.Rule
	}{
		{"none", audit.Rule{Default: true}},
		{"none(allow@default.pol:25)", audit.Rule{Default: true, Nearest: audit.RuleRef{"allow", "default.pol", 25}}},
		{"none+dontaudit@b.pol:9", audit.Rule{Default: true, Refs: []audit.RuleRef{{"dontaudit", "b.pol", 9}}}},
		{"none(allow@a(1).pol:2)+dontaudit@b.pol:9", audit.Rule{Default: true, Nearest: audit.RuleRef{"allow", "a(1).pol", 2}, Refs: []audit.RuleRef{{"dontaudit", "b.pol", 9}}}},
		{"protect@/etc/procgate/broker.pol:17", audit.Rule{Refs: []audit.RuleRef{{"protect", "/etc/procgate/broker.pol", 17}}}},
		{"allow@c++.pol:15+auditallow@x:y.pol:16", audit.Rule{Refs: []audit.RuleRef{{"allow", "c++.pol", 15}, {"auditallow", "x:y.pol", 16}}}},
	} {
		got, err := audit.ParseRule(tc.s)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRule(%q) = %+v, %v, want %+v", tc.s, got, err, tc.want)
		}
		if got.String() != tc.s {
			t.Errorf("ParseRule(%q).String() = %q", tc.s, got.String())
		}
	}
	for _, bad := range []string{"", "nonex", "none(", "none()", "none(allow@a:1", "none+", "allow", "allow@a", "allow@:1", "allow@a:-1", "Allow@a:1", "allow@a:1+", "allow@a:1+deny"} {
		if r, err := audit.ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) = %+v, want an error", bad, r)
		}
	}
}

// equal compares records, times by Equal.
func equal(a, b audit.Record) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}
