package selinux

// tokKind is a lexical token kind of the policy language.
type tokKind uint8

const (
	tokEOF   tokKind = iota
	tokIdent         // type, attribute and keyword names
	tokPunct         // one of ; : , { } * ~ -
)

// token is one token with its position.
type token struct {
	kind      tokKind
	text      string
	line, col int
}

// lex splits src into tokens. Identifiers follow checkpolicy's lexer: a
// letter or underscore, then letters, digits, '_', '.' and '-'. '#'
// starts a comment that runs to the end of the line.
func lex(src string) ([]token, *Error) {
	var toks []token
	line, col := 1, 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line, col = line+1, 1
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == ';' || c == ':' || c == ',' || c == '{' || c == '}' || c == '*' || c == '~' || c == '-':
			toks = append(toks, token{tokPunct, src[i : i+1], line, col})
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			toks = append(toks, token{tokIdent, src[i:j], line, col})
			col += j - i
			i = j
			continue
		default:
			return nil, &Error{Line: line, Col: col, Msg: "unexpected character " + quoteChar(c)}
		}
		i++
		col++
	}
	toks = append(toks, token{tokEOF, "", line, col})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '.' || c == '-'
}

func quoteChar(c byte) string {
	if c < 0x20 || c >= 0x7f {
		const digits = "0123456789abcdef"
		return "0x" + string([]byte{digits[c>>4], digits[c&15]})
	}
	return "'" + string(c) + "'"
}
