package audit_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/procgate/procgate/audit"
)

// TestRoundTrip: every record, written in either shape behind any
// prefix, parses back to the same fields — all of them in JSON (strings
// made valid UTF-8), all but Reason in the AVC shape.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	prefixes := []string{"", "Nov 28 12:00:00 host procgate[812]: ", "procgate[1]: "}
	for i := range 5000 {
		r := randomRecord(rng)
		prefix := prefixes[i%len(prefixes)]

		avc := string(audit.AppendAVC(nil, &r))
		got, err := audit.Parse(prefix + avc)
		want := r
		want.Reason = ""
		if err != nil || !equal(got, want) {
			t.Fatalf("AVC %q parses to\n%+v, %v\nwant\n%+v", avc, got, err, want)
		}

		js := string(audit.AppendJSON(nil, &r))
		got, err = audit.Parse(prefix + js)
		want = validUTF8(r)
		if err != nil || !equal(got, want) {
			t.Fatalf("JSON %s parses to\n%+v, %v\nwant\n%+v", js, got, err, want)
		}
	}
}

// randomRecord returns a decision or a summary with awkward text: quotes,
// spaces, control and non-UTF-8 bytes, hex-looking names.
func randomRecord(rng *rand.Rand) audit.Record {
	var r audit.Record
	if rng.IntN(4) > 0 {
		r.Time = time.UnixMilli(rng.Int64N(4102444800000)).UTC() // 1970–2100
		r.Serial = rng.Uint64N(1 << 40)
	}
	r.Granted = rng.IntN(2) == 0
	items := []string{"io", "environ", "fd_count", "stat_full", "mem", "attach"}
	r.Item = items[rng.IntN(len(items))]
	r.Access = audit.Read
	if r.Item == "mem" || r.Item == "attach" {
		r.Access = audit.Attach
	}
	if rng.IntN(4) == 0 {
		// procgate's BPF program: whole classes.
		r.Writer = audit.TagBPF
		if r.Access == audit.Read {
			r.Item = audit.Read
		} else {
			r.Item = audit.Attach
		}
	}
	r.Subject.UID, r.Target.UID = rng.Uint32(), rng.Uint32()
	r.Generation = rng.Uint64()
	if rng.IntN(5) == 0 {
		r.Suppressed = 1 + rng.Uint64N(1000)
		switch r.Scope = audit.Scope(rng.IntN(3)); r.Scope {
		case audit.ScopeCaller:
			r.Access, r.Item, r.Target.UID = "", "", 0
		case audit.ScopeAll:
			r.Access, r.Item, r.Target.UID, r.Subject.UID = "", "", 0, 0
		}
		return r
	}
	r.Subject.PID, r.Target.PID = rng.IntN(1<<22), rng.IntN(1<<22)
	r.Subject.Comm, r.Target.Comm = randomText(rng), randomText(rng)
	if rng.IntN(2) == 0 {
		r.Subject.Context = randomText(rng)
	}
	if rng.IntN(2) == 0 {
		r.Target.Context = randomText(rng)
	}
	r.Rule = randomRule(rng).String()
	r.Reason = randomText(rng)
	return r
}

func randomText(rng *rand.Rand) string {
	samples := []string{"", "sleep", "ssh agent", `a"b`, "CAFE", "cafe", "ABC", "system_u:system_r:sshd_t:s0:c1,c2", "firefox (enforce)", "\x00\x01\n", "é✓", "a\\b", "x=y", "(deleted)"}
	if rng.IntN(3) > 0 {
		return samples[rng.IntN(len(samples))]
	}
	b := make([]byte, rng.IntN(17))
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return string(b)
}

func randomRule(rng *rand.Rand) audit.Rule {
	files := []string{"default.pol", "/etc/procgate/broker.pol", "my policy.pol", "c++.pol", "a:b.pol", `q"uote.pol`, "(x).pol", "ABCD"}
	effects := []string{"allow", "deny", "protect", "auditallow", "dontaudit"}
	ref := func() audit.RuleRef {
		return audit.RuleRef{Effect: effects[rng.IntN(len(effects))], File: files[rng.IntN(len(files))], Line: 1 + rng.IntN(5000)}
	}
	var r audit.Rule
	r.Default = rng.IntN(3) == 0
	if r.Default && rng.IntN(2) == 0 {
		r.Nearest = ref()
	}
	n := rng.IntN(3)
	if !r.Default {
		n++
	}
	for range n {
		r.Refs = append(r.Refs, ref())
	}
	return r
}

// validUTF8 returns r with its strings as JSON carries them: each byte
// that is not UTF-8 replaced by U+FFFD.
func validUTF8(r audit.Record) audit.Record {
	fix := func(s *string) {
		var b strings.Builder
		for i := 0; i < len(*s); {
			c, n := utf8.DecodeRuneInString((*s)[i:])
			b.WriteRune(c) // utf8.RuneError for a byte that is not UTF-8
			i += n
		}
		*s = b.String()
	}
	for _, s := range []*string{&r.Subject.Comm, &r.Target.Comm, &r.Subject.Context, &r.Target.Context, &r.Rule, &r.Reason} {
		fix(s)
	}
	return r
}

// FuzzParse: Parse never panics, every error is a positioned
// SyntaxError inside the line, and whatever parses writes back, in both
// shapes, to a record that parses to the same fields.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		r, err := audit.Parse(line)
		if err != nil {
			var se *audit.SyntaxError
			if !errors.As(err, &se) || se.Col < 1 || se.Col > len(line)+1 || se.Msg == "" {
				t.Fatalf("Parse(%q) = %v: not a positioned error", line, err)
			}
			return
		}
		want := r
		want.Reason = ""
		want.Time = r.Time.Truncate(time.Millisecond)
		avc := audit.AppendAVC(nil, &r)
		if got, err := audit.Parse(string(avc)); err != nil || !equal(got, want) {
			t.Fatalf("Parse(%q) = %+v\nwritten as %q, parses to %+v, %v", line, r, avc, got, err)
		}
		js := audit.AppendJSON(nil, &r)
		if got, err := audit.Parse(string(js)); err != nil || !equal(got, validUTF8(r)) {
			t.Fatalf("Parse(%q) = %+v\nwritten as %s, parses to %+v, %v", line, r, js, got, err)
		}
	})
}
