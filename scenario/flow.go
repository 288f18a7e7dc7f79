package scenario

import "bytes"

// bracket is a flow collection's opening indicator, "[" or "{", at a
// 1-based line and byte column.
type bracket struct {
	open      byte
	line, col int
}

// unclosedBracket finds the flow collection yaml.v3 complains about when
// it reports "did not find expected ',' or ']'" (or '}'): the innermost
// opening indicator of that kind still open where the text stops making
// sense — at a closing indicator of the other kind, or at the end. The
// parser's own message gives the line before the indicator's (its mark is
// 0-based) and no column, so the position is recovered from the text.
//
// The scan knows enough YAML for scenario files: comments, single and
// double-quoted scalars, block scalars (| and >, whose lines are text)
// and the rule that in block context "[" and "{" open a collection only
// where a value starts. It reports false when it finds nothing open.
func unclosedBracket(src []byte, open byte) (bracket, bool) {
	var stack []bracket
	quote := byte(0)  // the open quote, when inside a quoted scalar
	blockIndent := -1 // inside a block scalar: the indentation of its parent line
	lines := bytes.Split(src, []byte("\n"))
	for i, text := range lines {
		indent := len(text) - len(bytes.TrimLeft(text, " "))
		if blockIndent >= 0 {
			if len(bytes.TrimSpace(text)) == 0 || indent > blockIndent {
				continue
			}
			blockIndent = -1
		}
		prev := byte(0) // the previous non-blank byte of the line outside scalars
		for j := 0; j < len(text); j++ {
			c := text[j]
			if quote != 0 {
				switch {
				case quote == '"' && c == '\\':
					j++
				case c == quote && quote == '\'' && j+1 < len(text) && text[j+1] == '\'':
					j++
				case c == quote:
					quote, prev = 0, c
				}
				continue
			}
			switch {
			case c == ' ' || c == '\t' || c == '\r':
				continue
			case c == '#' && (j == 0 || text[j-1] == ' ' || text[j-1] == '\t'):
				j = len(text)
				continue
			case (c == '"' || c == '\'') && startsValue(prev, len(stack) > 0):
				quote = c
				continue
			case (c == '|' || c == '>') && len(stack) == 0 && (prev == ':' || prev == '-' || prev == 0):
				blockIndent = indent
				j = len(text)
				continue
			case (c == '[' || c == '{') && (len(stack) > 0 || startsValue(prev, false)):
				stack = append(stack, bracket{c, i + 1, j + 1})
			case (c == ']' || c == '}') && len(stack) > 0:
				top := stack[len(stack)-1]
				if top.open == '[' && c == '}' || top.open == '{' && c == ']' {
					return innermost(stack, open)
				}
				stack = stack[:len(stack)-1]
			}
			prev = c
		}
	}
	return innermost(stack, open)
}

// startsValue reports whether a scalar or collection may start after the
// byte prev (0 at the start of a line): in flow context after "[", "{",
// "," or ":", in block context after ":", "-" or "?" or at the start.
func startsValue(prev byte, flow bool) bool {
	switch prev {
	case 0, ':', '[', '{', ',':
		return true
	case '-', '?':
		return !flow
	}
	return false
}

// innermost returns the innermost open indicator of the given kind.
func innermost(stack []bracket, open byte) (bracket, bool) {
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i].open == open {
			return stack[i], true
		}
	}
	return bracket{}, false
}
