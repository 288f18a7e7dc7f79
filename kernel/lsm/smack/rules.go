package smack

import (
	"fmt"
	"strings"

	"github.com/procgate/procgate/internal/srcerr"
	"github.com/procgate/procgate/kernel"
)

// The built-in labels (security/smack/smack_access.c).
const (
	Star  = "*" // smack_known_star: readable by all, reads nothing
	Floor = "_" // smack_known_floor: readable and executable by all
	Hat   = "^" // smack_known_hat: reads and executes everything
	Web   = "@" // smack_known_web: accessible by all, accesses all
	Huh   = "?" // smack_known_huh
)

// Access is a set of Smack access bits.
type Access uint8

// Access bits, in the order smack_str_from_perm prints them.
const (
	MayRead      Access = 1 << iota // r
	MayWrite                        // w
	MayExec                         // x
	MayAppend                       // a
	MayTransmute                    // t
	MayLock                         // l
	MayBringup                      // b
)

const accessLetters = "rwxatlb"

// String returns the access letters as smack_str_from_perm prints them
// ("rw"); b (bringup) is not printed there and is listed last here.
func (a Access) String() string {
	var b []byte
	for i := range accessLetters {
		if a&(1<<i) != 0 {
			b = append(b, accessLetters[i])
		}
	}
	return string(b)
}

type pair struct{ subject, object string }

// Rules are Smack access rules, as written to /smack/load2.
type Rules struct {
	byPair map[pair]Access
	src    string // the text given to ParseRules
}

// Source returns the text the rules were parsed from (empty for no rules).
func (r *Rules) Source() string { return r.src }

// Error is a problem in a rules text; Line and Col are 1-based within
// the text given to [ParseRules]; File is empty.
type Error = srcerr.Error

// ParseRules parses lines of "subject object access", where access is
// made of the letters rwxatlb in either case, or "-" for none. Blank
// lines and lines starting with '#' are ignored; a later rule for the
// same subject and object replaces an earlier one, as writes to
// /smack/load2 do. The error is an *Error. It never panics.
func ParseRules(src string) (*Rules, error) {
	r := &Rules{src: src, byPair: map[pair]Access{}}
	for n, line := range strings.Split(src, "\n") {
		fields, cols := splitFields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 3 {
			col := 1
			if len(fields) > 3 {
				col = cols[3]
			} else {
				col = len(line) + 1
			}
			return nil, &Error{Line: n + 1, Col: col, Msg: fmt.Sprintf("want \"subject object access\", found %d field(s)", len(fields))}
		}
		for i := range 2 {
			if msg := checkLabel(fields[i]); msg != "" {
				return nil, &Error{Line: n + 1, Col: cols[i], Msg: msg}
			}
		}
		var a Access
		for j := 0; j < len(fields[2]); j++ {
			c := fields[2][j] | 0x20 // lower case
			if fields[2][j] == '-' {
				continue
			}
			k := strings.IndexByte(accessLetters, c)
			if k < 0 {
				return nil, &Error{Line: n + 1, Col: cols[2] + j, Msg: fmt.Sprintf("unknown access %q (want letters of %q or \"-\")", fields[2][j], accessLetters)}
			}
			a |= 1 << k
		}
		r.byPair[pair{fields[0], fields[1]}] = a
	}
	return r, nil
}

// splitFields splits on blanks and returns each field's 1-based column.
func splitFields(line string) ([]string, []int) {
	var fields []string
	var cols []int
	for i := 0; i < len(line); {
		if line[i] == ' ' || line[i] == '\t' || line[i] == '\r' {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' {
			j++
		}
		fields = append(fields, line[i:j])
		cols = append(cols, i+1)
		i = j
	}
	return fields, cols
}

// checkLabel is security/smack/smack_access.c:smk_parse_smack: no
// leading '-', no blank, '/', '"', '\\' or '\”, printable ASCII, at most
// 255 bytes.
func checkLabel(l string) string {
	if l[0] == '-' {
		return fmt.Sprintf("label %q may not start with '-'", l)
	}
	if len(l) >= 256 {
		return "label longer than 255 bytes"
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; c > '~' || c <= ' ' || c == '/' || c == '"' || c == '\\' || c == '\'' {
			return fmt.Sprintf("label %q holds the invalid character %q", l, c)
		}
	}
	return ""
}

// Access returns the rule's access from subject to object, and whether
// there is a rule.
func (r *Rules) Access(subject, object string) (Access, bool) {
	a, ok := r.byPair[pair{subject, object}]
	return a, ok
}

// Len returns the number of rules.
func (r *Rules) Len() int { return len(r.byPair) }

// reason says why access decided as it did.
type reason uint8

const (
	reasonStarSubject reason = iota
	reasonWeb
	reasonStarObject
	reasonSame
	reasonFloor
	reasonHat
	reasonNoRule
	reasonRuleShort
	reasonRule
)

func (r reason) String(may Access) string {
	switch r {
	case reasonStarSubject:
		return "a \"*\" subject can access nothing"
	case reasonWeb:
		return "\"@\" is accessible by all and accesses all"
	case reasonStarObject:
		return "a \"*\" object is accessible by all"
	case reasonSame:
		return "identical labels"
	case reasonFloor:
		return "the floor \"_\" is readable by all"
	case reasonHat:
		return "the hat \"^\" reads everything"
	case reasonNoRule:
		return "no rule for the pair"
	case reasonRuleShort:
		return "the rule grants only " + accessOrNone(may)
	}
	return "the rule grants " + may.String()
}

// access is security/smack/smack_access.c:smk_access without the audit:
// the built-in label rules, then the rule list (write implies lock).
func (r *Rules) access(subject, object string, req Access) (kernel.Errno, reason, Access) {
	const anyRead = MayRead | MayExec
	switch {
	case subject == Star:
		return kernel.EACCES, reasonStarSubject, 0
	case object == Web || subject == Web:
		return kernel.OK, reasonWeb, 0
	case object == Star:
		return kernel.OK, reasonStarObject, 0
	case subject == object:
		return kernel.OK, reasonSame, 0
	}
	if req&anyRead == req || req&MayLock == req {
		if object == Floor {
			return kernel.OK, reasonFloor, 0
		}
		if subject == Hat {
			return kernel.OK, reasonHat, 0
		}
	}
	may, ok := r.byPair[pair{subject, object}]
	if !ok {
		return kernel.EACCES, reasonNoRule, 0
	}
	if may&MayWrite != 0 {
		may |= MayLock
	}
	if req&may != req {
		return kernel.EACCES, reasonRuleShort, may
	}
	return kernel.OK, reasonRule, may
}

func accessOrNone(a Access) string {
	if a == 0 {
		return "-"
	}
	return a.String()
}
