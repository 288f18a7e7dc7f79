package apparmor

import (
	"regexp"
	"strings"
)

// aare is a compiled AppArmor regular expression as ptrace peers use it
// (parser/parser_regex.c:convert_aaregex_to_pcre with glob_default): '*'
// matches within a path component, '**' across components, '?' one
// character other than '/', [...] a class ([^...] or [!...] negated),
// {a,b} alternatives, and '\' escapes the next character.
type aare struct {
	src string
	re  *regexp.Regexp // nil when src has no special characters
}

// match reports whether the label matches.
func (a *aare) match(label string) bool {
	if a.re == nil {
		return label == a.src
	}
	return a.re.MatchString(label)
}

// compileAARE translates src to an anchored Go regular expression. It
// returns the column offset (0-based, in bytes) and message of the first
// problem.
func compileAARE(src string) (*aare, int, string) {
	if !strings.ContainsAny(src, `*?[]{}\`) {
		return &aare{src: src}, 0, ""
	}
	var b strings.Builder
	b.WriteString(`^(?:`)
	depth := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '\\':
			if i+1 >= len(src) {
				return nil, i, "trailing backslash"
			}
			i++
			b.WriteString(regexp.QuoteMeta(src[i : i+1]))
		case '*':
			if i+1 < len(src) && src[i+1] == '*' {
				for i+1 < len(src) && src[i+1] == '*' {
					i++
				}
				b.WriteString(`.*`)
			} else {
				b.WriteString(`[^/]*`)
			}
		case '?':
			b.WriteString(`[^/]`)
		case '[':
			j := i + 1
			if j < len(src) && (src[j] == '^' || src[j] == '!') {
				j++
			}
			if j < len(src) && src[j] == ']' {
				j++
			}
			for j < len(src) && src[j] != ']' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, i, "unterminated character class"
			}
			b.WriteByte('[')
			k := i + 1
			if src[k] == '^' || src[k] == '!' {
				b.WriteByte('^')
				k++
			}
			for ; k < j; k++ {
				ch := src[k]
				switch {
				case ch == '\\' && k+1 < j:
					k++
					b.WriteString(regexp.QuoteMeta(src[k : k+1]))
				case ch == '-':
					b.WriteByte('-')
				default:
					b.WriteString(regexp.QuoteMeta(src[k : k+1]))
				}
			}
			b.WriteByte(']')
			i = j
		case ']':
			return nil, i, "unmatched ']'"
		case '{':
			depth++
			b.WriteString(`(?:`)
		case ',':
			if depth == 0 {
				b.WriteByte(',')
			} else {
				b.WriteByte('|')
			}
		case '}':
			if depth == 0 {
				return nil, i, "unmatched '}'"
			}
			depth--
			b.WriteByte(')')
		default:
			b.WriteString(regexp.QuoteMeta(src[i : i+1]))
		}
	}
	if depth != 0 {
		return nil, len(src) - 1, "unterminated '{' alternation"
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, 0, "bad pattern: " + err.Error()
	}
	return &aare{src: src, re: re}, 0, ""
}
