package audit

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// AppendJSON appends r as one JSON object, without a newline. Its keys,
// in this order: "time" (RFC 3339, UTC, nanoseconds) and "serial" when r
// has a header; "result", "access", "item"; for a decision "pid", "comm",
// "uid", "scontext", "tpid", "tcomm", "tuid", "tcontext", "rule",
// "reason", "gen", "permissive" (always 0); for a summary "uid", "tuid"
// (ScopeKey; ScopeCaller has "uid" only, ScopeAll neither, and both have
// "*" for the access and the item), "suppressed", "gen". Strings are
// UTF-8: a byte that is not becomes U+FFFD, as encoding/json writes it.
func AppendJSON(b []byte, r *Record) []byte {
	b = append(b, '{')
	if !r.Time.IsZero() {
		b = appendJSONString(append(b, `"time":`...), r.Time.UTC().Format(time.RFC3339Nano))
		b = appendUint(b, `,"serial":`, r.Serial)
		b = append(b, ',')
	}
	if r.Writer != "" && r.Writer != Tag {
		b = appendJSONString(append(b, `"writer":`...), r.Writer)
		b = append(b, ',')
	}
	b = appendJSONString(append(b, `"result":`...), result(r.Granted))
	access, item := r.Access, r.Item
	if r.IsSummary() && r.Scope != ScopeKey {
		access, item = anyAccess, anyAccess
	}
	b = appendJSONString(append(b, `,"access":`...), access)
	b = appendJSONString(append(b, `,"item":`...), item)
	if r.IsSummary() {
		if r.Scope != ScopeAll {
			b = appendUint(b, `,"uid":`, uint64(r.Subject.UID))
		}
		if r.Scope == ScopeKey {
			b = appendUint(b, `,"tuid":`, uint64(r.Target.UID))
		}
		b = appendUint(b, `,"suppressed":`, r.Suppressed)
		b = appendUint(b, `,"gen":`, r.Generation)
		return append(b, '}')
	}
	for _, side := range [...]struct {
		prefix string
		p      *Process
	}{{"", &r.Subject}, {"t", &r.Target}} {
		b = strconv.AppendInt(append(b, `,"`+side.prefix+`pid":`...), int64(side.p.PID), 10)
		b = appendJSONString(append(b, `,"`+side.prefix+`comm":`...), side.p.Comm)
		b = appendUint(b, `,"`+side.prefix+`uid":`, uint64(side.p.UID))
		ctx := `,"scontext":`
		if side.prefix == "t" {
			ctx = `,"tcontext":`
		}
		b = appendJSONString(append(b, ctx...), side.p.Context)
	}
	rule := r.Rule
	if rule == "" {
		rule = "none"
	}
	b = appendJSONString(append(b, `,"rule":`...), rule)
	b = appendJSONString(append(b, `,"reason":`...), r.Reason)
	b = appendUint(b, `,"gen":`, r.Generation)
	return append(b, `,"permissive":0}`...)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// jsonKeys are the keys every JSON record may hold besides those of a
// decision or a summary; jsonStrings the keys whose values are strings.
var (
	jsonKeys    = map[string]bool{"time": false, "serial": false, "writer": false, "result": true, "access": true, "item": true}
	jsonStrings = map[string]bool{"time": true, "writer": true, "result": true, "access": true, "item": true, "comm": true, "tcomm": true, "scontext": true, "tcontext": true, "rule": true, "reason": true}
)

// parseJSON parses the JSON object that starts at line[i:].
func parseJSON(line string, i int, v Vocabulary) (Record, error) {
	dec := json.NewDecoder(strings.NewReader(line[i:]))
	dec.UseNumber()
	// at returns the line offset of the next token after decoder offset n.
	at := func(n int64) int { return skipJSONSpace(line, i+int(n)) }
	fail := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return errAt(i+int(se.Offset)-1, "JSON: %v", se)
		}
		return errAt(len(line), "JSON: %v", err)
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, fail(err)
	}
	var r Record
	seen := map[string]int{}
	var order []string
	text := map[string]string{}
	for dec.More() {
		keyOff := at(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return Record{}, fail(err)
		}
		key := tok.(string) // an object's keys are strings
		if !knownKey(key) {
			return Record{}, errAt(keyOff, "unknown field %s", clip(key))
		}
		off := at(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Record{}, fail(err)
		}
		if _, dup := seen[key]; dup {
			return Record{}, errAt(keyOff, "field %s appears twice", clip(key))
		}
		seen[key] = off
		order = append(order, key)
		var val string
		if jsonStrings[key] {
			if err := json.Unmarshal(raw, &val); err != nil {
				return Record{}, errAt(off, "%s: want a string", clip(key))
			}
		} else if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
			val = string(raw)
		} else {
			return Record{}, errAt(off, "%s: want a number", clip(key))
		}
		text[key] = val
		if _, common := jsonKeys[key]; !common {
			if err := setField(&r, key, val, off, v); err != nil {
				return Record{}, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, fail(err)
	}
	if end := at(dec.InputOffset()); end < len(line) {
		return Record{}, errAt(end, "text after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, errAt(len(line), "text after the JSON object")
	}
	wildcard := text["access"] == anyAccess
	if err := checkJSONKeys(line, wildcard, seen, order); err != nil {
		return Record{}, err
	}
	_, hasUID := seen["uid"]
	setScope(&r, wildcard, hasUID)
	return r, setJSONHead(&r, text, seen, v)
}

// checkJSONKeys refuses keys a decision (or a summary; wildcard: of any
// access) does not have and requires those it must have.
func checkJSONKeys(line string, wildcard bool, seen map[string]int, order []string) error {
	_, summary := seen["suppressed"]
	keys, what := recordKeys(wildcard, summary)
	for _, key := range order {
		_, common := jsonKeys[key]
		_, ok := keys[key]
		if !ok && !common && !(key == "reason" && !summary && !wildcard) {
			return errAt(seen[key], "%s has no field %s", what, clip(key))
		}
	}
	for _, key := range []string{"result", "access", "item", "pid", "comm", "uid", "tpid", "tcomm", "tuid", "rule", "suppressed", "gen"} {
		if _, ok := seen[key]; (keys[key] || jsonKeys[key]) && !ok {
			return errAt(len(line)-1, "no %q field", key)
		}
	}
	if _, ok := seen["serial"]; ok {
		if _, ok := seen["time"]; !ok {
			return errAt(seen["serial"], "a serial number without a time")
		}
	}
	return nil
}

// setJSONHead sets the time, serial, result, access and item.
func setJSONHead(r *Record, text map[string]string, seen map[string]int, v Vocabulary) error {
	if s, ok := text["time"]; ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.Unix() < 0 {
			return errAt(seen["time"], "time %s: want an RFC 3339 time after 1970", clip(s))
		}
		r.Time = t.UTC()
	}
	if s, ok := text["serial"]; ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return errAt(seen["serial"], "serial %s: want a number", clip(s))
		}
		r.Serial = n
	}
	if w, ok := text["writer"]; ok {
		if w != TagBPF {
			return errAt(seen["writer"], "writer %s: want %s (a record without a writer is the broker's)", clip(w), TagBPF)
		}
		r.Writer = w
	}
	switch text["result"] {
	case "granted":
		r.Granted = true
	case "denied":
	default:
		return errAt(seen["result"], "result %s: want granted or denied", clip(text["result"]))
	}
	access, item := text["access"], text["item"]
	if access == anyAccess {
		if item != anyAccess {
			return errAt(seen["item"], "item %s: a summary of any access (\"*\") has the item \"*\"", clip(item))
		}
		return nil
	}
	if access != Read && access != Attach {
		return errAt(seen["access"], "access %s: want read or attach", clip(access))
	}
	if !validItem(item) {
		return errAt(seen["item"], "item %s: want an item name", clip(item))
	}
	if item == Read && r.Writer != TagBPF {
		return errAt(seen["item"], "item read: only a %s record names the whole READ class", TagBPF)
	}
	if v != nil && item != access {
		if err := v.CheckItem(access, item); err != nil {
			return errAt(seen["item"], "item %s: %v", clip(item), err)
		}
	}
	r.Access, r.Item = access, item
	return nil
}

// skipJSONSpace returns the offset of the first byte at or after off that
// is not JSON white space, ',' or ':'.
func skipJSONSpace(line string, off int) int {
	for off < len(line) && strings.IndexByte(" \t\r\n,:", line[off]) >= 0 {
		off++
	}
	return off
}
