// Package srcerr holds errors located in a source text — a scenario file,
// a policy — by line and column, and lists of them.
package srcerr

import (
	"strconv"
	"strings"
)

// Error is one problem at a place in a text. Line and Col are 1-based;
// Col counts bytes. File is empty for a text that is not a file of its
// own (a policy embedded in a scenario), so that the caller embedding it
// can add the file and its offset.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

// Error returns "file:line:column: message", or "line:column: message"
// without a file.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(e.Col))
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// List is every problem found in one text, in text order.
type List []*Error

// Error returns one problem per line.
func (l List) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the individual errors, for errors.As.
func (l List) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
