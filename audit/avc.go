package audit

import (
	"strconv"
	"strings"
	"time"
)

// AppendAVC appends r in the kernel AVC's shape, without a newline:
//
//	[audit(SEC.MSEC:SERIAL): ]broker: RESULT { ACCESS } for FIELDS
//
// where FIELDS are, for a decision, "pid= comm= uid= [scontext=] tpid=
// tcomm= tuid= [tcontext=] rule= gen=" and, for a denial, "permissive=0";
// for a summary, "uid= tuid= suppressed= gen=" (ScopeKey), "uid=
// suppressed= gen=" (ScopeCaller) or "suppressed= gen=" (ScopeAll), the
// last two with "*" for the access. Reason is not written.
func AppendAVC(b []byte, r *Record) []byte {
	if !r.Time.IsZero() {
		ms := max(r.Time.UnixMilli(), 0)
		b = append(b, "audit("...)
		b = strconv.AppendInt(b, ms/1000, 10)
		b = append(b, '.', byte('0'+ms%1000/100), byte('0'+ms%100/10), byte('0'+ms%10), ':')
		b = strconv.AppendUint(b, r.Serial, 10)
		b = append(b, "): "...)
	}
	b = append(b, r.tag()...)
	b = append(b, ": "...)
	b = append(b, result(r.Granted)...)
	b = append(b, " { "...)
	if r.IsSummary() && r.Scope != ScopeKey {
		b = append(b, anyAccess...)
	} else {
		b = append(b, AccessName(r.Access, r.Item)...)
	}
	b = append(b, " } for "...)
	if r.IsSummary() {
		switch r.Scope {
		case ScopeKey:
			b = appendUint(b, "uid=", uint64(r.Subject.UID))
			b = appendUint(b, " tuid=", uint64(r.Target.UID))
			b = append(b, ' ')
		case ScopeCaller:
			b = appendUint(b, "uid=", uint64(r.Subject.UID))
			b = append(b, ' ')
		}
		b = appendUint(b, "suppressed=", r.Suppressed)
		return appendUint(b, " gen=", r.Generation)
	}
	b = appendProcess(b, "", " scontext=", &r.Subject)
	b = append(b, ' ')
	b = appendProcess(b, "t", " tcontext=", &r.Target)
	b = append(b, " rule="...)
	if r.Rule == "" {
		b = append(b, "none"...)
	} else {
		b = appendLabel(b, r.Rule)
	}
	b = appendUint(b, " gen=", r.Generation)
	if !r.Granted {
		b = append(b, " permissive=0"...)
	}
	return b
}

func appendUint(b []byte, key string, n uint64) []byte {
	return strconv.AppendUint(append(b, key...), n, 10)
}

// appendProcess appends one side of a record: "pid=… comm=… uid=…" and,
// when set, "scontext=…"; with prefix "t", "tpid=…" and so on.
func appendProcess(b []byte, prefix, ctxKey string, p *Process) []byte {
	b = append(append(b, prefix...), "pid="...)
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(append(append(b, ' '), prefix...), "comm="...)
	b = appendUntrusted(b, p.Comm)
	b = append(append(append(b, ' '), prefix...), "uid="...)
	b = strconv.AppendUint(b, uint64(p.UID), 10)
	if p.Context != "" {
		b = appendLabel(append(b, ctxKey...), p.Context)
	}
	return b
}

// plain reports whether s can be written between double quotes as the
// kernel's audit does: no quote, no space, no control character, only
// printable ASCII (audit_string_contains_control, kernel/audit.c).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// looksHex reports whether s could be read as a hex-encoded value.
func looksHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// appendUntrusted appends s as audit_log_n_untrustedstring does
// (kernel/audit.c): quoted when plain, upper-case hex otherwise.
func appendUntrusted(b []byte, s string) []byte {
	if plain(s) {
		return append(append(append(b, '"'), s...), '"')
	}
	return appendHex(b, s)
}

// appendLabel appends s bare when it is plain and cannot be mistaken for
// hex (as the kernel writes scontext=), else as appendUntrusted does.
func appendLabel(b []byte, s string) []byte {
	if plain(s) && !looksHex(s) && s != "" {
		return append(b, s...)
	}
	return appendUntrusted(b, s)
}

func appendHex(b []byte, s string) []byte {
	const digits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		b = append(b, digits[s[i]>>4], digits[s[i]&0xf])
	}
	return b
}

// decodeString reads a value written by appendUntrusted or appendLabel:
// quoted, hex, or bare.
func decodeString(v string) string {
	switch {
	case len(v) >= 2 && v[0] == '"':
		return v[1 : len(v)-1]
	case looksHex(v):
		b := make([]byte, len(v)/2)
		for i := range b {
			b[i] = unhex(v[2*i])<<4 | unhex(v[2*i+1])
		}
		return string(b)
	}
	return v
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// stringKeys are the fields whose values are text (quoted, hex or bare).
var stringKeys = map[string]bool{"comm": true, "tcomm": true, "scontext": true, "tcontext": true, "rule": true, "reason": true}

// decisionKeys, summaryKeys and anyKeys are the fields of a decision, of
// a summary of one access (ScopeKey) and of a summary of any access
// (ScopeCaller with uid=, ScopeAll without): those a record must hold
// (true) and those it may hold (false).
var (
	decisionKeys = map[string]bool{"pid": true, "comm": true, "uid": true, "scontext": false, "tpid": true, "tcomm": true, "tuid": true, "tcontext": false, "rule": true, "gen": true, "permissive": false}
	summaryKeys  = map[string]bool{"uid": true, "tuid": true, "suppressed": true, "gen": true}
	anyKeys      = map[string]bool{"uid": false, "suppressed": true, "gen": true}
)

// recordKeys returns the fields a record may hold and what it is, for
// messages: wildcard (the access is "*"), or else a summary or a decision.
func recordKeys(wildcard, summary bool) (map[string]bool, string) {
	switch {
	case wildcard:
		return anyKeys, "a summary of any access"
	case summary:
		return summaryKeys, "a summary"
	}
	return decisionKeys, "a decision"
}

// setScope sets the scope of a record parsed with the access "*": of one
// caller when it names the caller's uid, of all of them otherwise.
func setScope(r *Record, wildcard, hasUID bool) {
	switch {
	case !wildcard:
	case hasUID:
		r.Scope = ScopeCaller
	default:
		r.Scope = ScopeAll
	}
}

// parseAVC parses the record that starts at line[i:] ("audit(" or the
// tag).
func parseAVC(line string, i int, v Vocabulary) (Record, error) {
	var r Record
	p := &scanner{line: line, pos: i}
	if p.skip("audit(") {
		if err := p.header(&r); err != nil {
			return Record{}, err
		}
	}
	switch {
	case p.skip(Tag + ": "):
	case p.skip(TagBPF + ": "):
		r.Writer = TagBPF
	default:
		return Record{}, errAt(p.pos, "want %q or %q, found %q", Tag+": ", TagBPF+": ", p.peek())
	}
	switch {
	case p.skip("granted "):
		r.Granted = true
	case p.skip("denied "):
	default:
		return Record{}, errAt(p.pos, "want granted or denied, found %q", p.peek())
	}
	wildcard, err := p.access(&r, v)
	if err != nil {
		return Record{}, err
	}
	if !p.skip(" for ") {
		return Record{}, errAt(p.pos, "want \" for \" after the access, found %q", p.peek())
	}
	return r, p.fields(&r, wildcard, v)
}

// scanner reads a line from pos.
type scanner struct {
	line string
	pos  int
}

func (p *scanner) skip(s string) bool {
	if strings.HasPrefix(p.line[p.pos:], s) {
		p.pos += len(s)
		return true
	}
	return false
}

// peek returns the next word, for messages.
func (p *scanner) peek() string {
	rest := p.line[p.pos:]
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return "the end of the line"
	}
	return rest
}

// digits reads a run of decimal digits.
func (p *scanner) digits() string {
	start := p.pos
	for p.pos < len(p.line) && p.line[p.pos] >= '0' && p.line[p.pos] <= '9' {
		p.pos++
	}
	return p.line[start:p.pos]
}

// header reads "SEC.MSEC:SERIAL): " after "audit(".
func (p *scanner) header(r *Record) error {
	start := p.pos
	sec, err := strconv.ParseInt(p.digits(), 10, 64)
	if err != nil || sec > 1<<53 || !p.skip(".") {
		return errAt(start, "want audit(SECONDS.MILLISECONDS:SERIAL)")
	}
	msPos := p.pos
	ms := p.digits()
	if len(ms) != 3 {
		return errAt(msPos, "want three digits of milliseconds")
	}
	m, _ := strconv.Atoi(ms)
	if !p.skip(":") {
		return errAt(p.pos, "want ':' and the serial number")
	}
	serialPos := p.pos
	serial, err := strconv.ParseUint(p.digits(), 10, 64)
	if err != nil {
		return errAt(serialPos, "want a serial number")
	}
	if !p.skip("): ") {
		return errAt(p.pos, "want \"): \" after the serial number")
	}
	r.Time, r.Serial = time.UnixMilli(sec*1000+int64(m)).UTC(), serial
	return nil
}

// access reads "{ ACCESS }"; wildcard reports "{ * }" (a summary of any
// access).
func (p *scanner) access(r *Record, v Vocabulary) (wildcard bool, err error) {
	if !p.skip("{ ") {
		return false, errAt(p.pos, "want '{ ACCESS }', found %q", p.peek())
	}
	start := p.pos
	end := strings.Index(p.line[start:], " }")
	if end < 0 {
		return false, errAt(start, "unterminated '{ ACCESS'")
	}
	name := p.line[start : start+end]
	p.pos = start + end + len(" }")
	if name == anyAccess {
		return true, nil
	}
	access, item, ok := strings.Cut(name, ":")
	if !ok && (name == Attach || name == Read && r.Writer == TagBPF) {
		item = name
	}
	if access != Read && access != Attach || !validItem(item) {
		return false, errAt(start, "access %q: want read:ITEM, attach, attach:ITEM, read (a %s record) or * (a summary)", name, TagBPF)
	}
	if v != nil && item != access {
		if err := v.CheckItem(access, item); err != nil {
			return false, errAt(start, "access %q: %v", name, err)
		}
	}
	r.Access, r.Item = access, item
	return false, nil
}

// validItem reports whether s is an item name: lower-case letters,
// digits and '_'.
func validItem(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// fields reads the key=value pairs to the end of the line; wildcard says the
// access was "*".
func (p *scanner) fields(r *Record, wildcard bool, v Vocabulary) error {
	seen := map[string]int{}
	var order []string
	for p.pos < len(p.line) {
		start := p.pos
		eq := strings.IndexByte(p.line[start:], '=')
		if eq <= 0 || strings.IndexByte(p.line[start:start+eq], ' ') >= 0 {
			return errAt(start, "want key=value, found %q", p.peek())
		}
		key := p.line[start : start+eq]
		if !knownKey(key) {
			return errAt(start, "unknown field %s", clip(key))
		}
		p.pos = start + eq + 1
		val, err := p.value()
		if err != nil {
			return err
		}
		if _, dup := seen[key]; dup {
			return errAt(start, "field %s appears twice", clip(key))
		}
		seen[key] = start
		order = append(order, key)
		text := val
		if stringKeys[key] {
			text = decodeString(val)
		}
		if err := setField(r, key, text, p.pos-len(val), v); err != nil {
			return err
		}
		if p.pos < len(p.line) && !p.skip(" ") {
			return errAt(p.pos, "want a space after %s=%s", key, val)
		}
	}
	_, summary := seen["suppressed"]
	keys, what := recordKeys(wildcard, summary)
	for _, key := range order {
		if _, ok := keys[key]; !ok {
			return errAt(seen[key], "%s has no field %s", what, clip(key))
		}
	}
	for _, key := range []string{"pid", "comm", "uid", "tpid", "tcomm", "tuid", "rule", "suppressed", "gen"} {
		if _, ok := seen[key]; keys[key] && !ok {
			return errAt(len(p.line), "no %s= field", key)
		}
	}
	_, hasUID := seen["uid"]
	setScope(r, wildcard, hasUID)
	return nil
}

// value reads a value: a quoted string or a run of non-space bytes.
func (p *scanner) value() (string, error) {
	start := p.pos
	rest := p.line[start:]
	if strings.HasPrefix(rest, `"`) {
		// As in the kernel's records, a quoted value holds no space.
		end := strings.IndexAny(rest[1:], `" `)
		if end < 0 || rest[1+end] != '"' {
			return "", errAt(start, "unterminated quoted value")
		}
		p.pos += end + 2
		return rest[:end+2], nil
	}
	end := strings.IndexByte(rest, ' ')
	if end < 0 {
		end = len(rest)
	}
	if end == 0 {
		return "", errAt(start, "empty value")
	}
	p.pos += end
	return rest[:end], nil
}
