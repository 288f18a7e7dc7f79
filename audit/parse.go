package audit

import (
	"strconv"
	"strings"
)

// Vocabulary vets the names a record uses, for a caller that knows them
// (the policy knows its items and rule effects).
type Vocabulary interface {
	// CheckItem returns an error when item is no item of the access
	// class.
	CheckItem(access, item string) error
	// CheckEffect returns an error when effect is no rule effect.
	CheckEffect(effect string) error
}

// Parse parses one record, AVC-shaped or JSON, as [AppendAVC] and
// [AppendJSON] write it. Text before the record — a syslog or journal
// prefix such as "Nov 28 12:00:00 host procgate[812]: " — is skipped: the
// record starts at the first "audit(", "broker: ", "bpf: " or `{"`. A malformed
// record gives a [*SyntaxError] with its column in line.
func Parse(line string) (Record, error) { return ParseWith(line, nil) }

// ParseWith is [Parse] with names vetted by v (when not nil): an unknown
// item or rule effect is a [*SyntaxError] at its position.
func ParseWith(line string, v Vocabulary) (Record, error) {
	line = strings.TrimRight(line, " \t\r\n")
	i, f := recordStart(line)
	switch {
	case i < 0:
		return Record{}, errAt(0, "no audit record: want audit(…): %s: …, %s: … or a JSON object", Tag, Tag)
	case f == JSON:
		return parseJSON(line, i, v)
	}
	return parseAVC(line, i, v)
}

// recordStart returns where the record in line starts, and its shape; -1
// when there is none.
func recordStart(line string) (int, Format) {
	at, f := -1, AVC
	for _, m := range [...]struct {
		mark string
		f    Format
	}{{"audit(", AVC}, {Tag + ": ", AVC}, {TagBPF + ": ", AVC}, {`{"`, JSON}} {
		if j := strings.Index(line, m.mark); j >= 0 && (at < 0 || j < at) {
			at, f = j, m.f
		}
	}
	return at, f
}

// knownKey reports whether key is a field of either shape.
func knownKey(key string) bool {
	_, common := jsonKeys[key]
	_, decision := decisionKeys[key]
	return common || decision || key == "reason" || key == "suppressed"
}

// setField sets one field common to both shapes; val is the decoded
// value (a string's text, a number's digits), off its offset in the line.
func setField(r *Record, key, val string, off int, v Vocabulary) error {
	num := func(bits int) (uint64, error) {
		n, err := strconv.ParseUint(val, 10, bits)
		if err != nil {
			return 0, errAt(off, "%s=%s: want a number below 2^%d", key, clip(val), bits)
		}
		return n, nil
	}
	var n uint64
	var err error
	switch key {
	case "pid":
		n, err = num(31)
		r.Subject.PID = int(n)
	case "tpid":
		n, err = num(31)
		r.Target.PID = int(n)
	case "uid":
		n, err = num(32)
		r.Subject.UID = uint32(n)
	case "tuid":
		n, err = num(32)
		r.Target.UID = uint32(n)
	case "comm":
		r.Subject.Comm = val
	case "tcomm":
		r.Target.Comm = val
	case "scontext":
		r.Subject.Context = val
	case "tcontext":
		r.Target.Context = val
	case "rule":
		err = checkRule(val, off, v)
		r.Rule = val
	case "gen":
		r.Generation, err = num(64)
	case "suppressed":
		r.Suppressed, err = num(64)
		if err == nil && r.Suppressed == 0 {
			err = errAt(off, "suppressed=0: a summary stands for at least one decision")
		}
	case "permissive":
		if val != "0" {
			err = errAt(off, "permissive=%s: procgate has no permissive mode, want 0", clip(val))
		}
	case "reason":
		r.Reason = val
	}
	return err
}

// checkRule parses a rule= value and vets its effects.
func checkRule(val string, off int, v Vocabulary) error {
	rule, err := ParseRule(val)
	if err != nil {
		return errAt(off, "%v", err)
	}
	if v == nil {
		return nil
	}
	refs := rule.Refs
	if rule.Nearest != (RuleRef{}) {
		refs = append([]RuleRef{rule.Nearest}, refs...)
	}
	for _, ref := range refs {
		if err := v.CheckEffect(ref.Effect); err != nil {
			return errAt(off, "rule %s: %v", clip(ref.String()), err)
		}
	}
	return nil
}

// clip shortens s for a message.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}
