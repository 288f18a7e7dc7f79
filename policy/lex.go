package policy

import (
	"fmt"
	"strings"
)

// tokKind is a lexical token class.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // names, keywords, numbers
	tString         // "quoted"
	tPunct          // { } ; : = , * -
	tBad            // a byte that starts no token
)

type token struct {
	kind tokKind
	text string
	pos  Pos
	off  int // byte offset of the token's start
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tString:
		return fmt.Sprintf("string %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// lexer scans a policy on demand. It has two modes: tokens (where ':' and
// '-' are punctuation) and values (selector and option values, where a
// word runs to white space, ';', '}' or '#', so that SELinux contexts and
// paths need no quotes).
type lexer struct {
	file      string
	src       []byte
	off       int
	line, col int
}

func newLexer(file string, src []byte) *lexer {
	return &lexer{file: file, src: src, line: 1, col: 1}
}

func (l *lexer) pos() Pos { return Pos{l.file, l.line, l.col} }

func (l *lexer) advance() {
	if l.src[l.off] == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	l.off++
}

// skip passes white space and comments.
func (l *lexer) skip() {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.advance()
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
		default:
			return
		}
	}
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == '/'
}

// next returns the next token in token mode.
func (l *lexer) next() token {
	l.skip()
	p, start := l.pos(), l.off
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p, off: start}
	}
	c := l.src[l.off]
	switch {
	case c == '"':
		s, ok := l.quoted()
		if !ok {
			return token{kind: tBad, text: "unterminated string", pos: p, off: start}
		}
		return token{kind: tString, text: s, pos: p, off: start}
	case strings.IndexByte("{};:=,*-", c) >= 0:
		l.advance()
		return token{kind: tPunct, text: string(c), pos: p, off: start}
	case isIdentByte(c):
		for l.off < len(l.src) && isIdentByte(l.src[l.off]) {
			l.advance()
		}
		return token{kind: tIdent, text: string(l.src[start:l.off]), pos: p, off: start}
	}
	l.advance()
	return token{kind: tBad, text: fmt.Sprintf("unexpected character %q", c), pos: p, off: start}
}

// value returns the next token in value mode: a quoted string, a word, or
// punctuation ';' / '}' that ends the value list.
func (l *lexer) value() token {
	l.skip()
	p, start := l.pos(), l.off
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p, off: start}
	}
	switch c := l.src[l.off]; c {
	case '"':
		s, ok := l.quoted()
		if !ok {
			return token{kind: tBad, text: "unterminated string", pos: p, off: start}
		}
		return token{kind: tString, text: s, pos: p, off: start}
	case ';', '}', '{':
		l.advance()
		return token{kind: tPunct, text: string(c), pos: p, off: start}
	}
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';' || c == '}' || c == '{' || c == '#' || c == '"' || c < 0x20 || c == 0x7f {
			break
		}
		l.advance()
	}
	if l.off == start {
		l.advance()
		return token{kind: tBad, text: fmt.Sprintf("unexpected character %q", l.src[start]), pos: p, off: start}
	}
	return token{kind: tIdent, text: string(l.src[start:l.off]), pos: p, off: start}
}

// quoted scans a double-quoted string with \" and \\ escapes; it may not
// span lines.
func (l *lexer) quoted() (string, bool) {
	l.advance() // opening quote
	var b strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '"':
			l.advance()
			return b.String(), true
		case c == '\n':
			return "", false
		case c == '\\' && l.off+1 < len(l.src) && (l.src[l.off+1] == '"' || l.src[l.off+1] == '\\'):
			l.advance()
			b.WriteByte(l.src[l.off])
			l.advance()
		default:
			b.WriteByte(c)
			l.advance()
		}
	}
	return "", false
}
