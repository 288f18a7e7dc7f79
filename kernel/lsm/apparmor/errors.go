package apparmor

import (
	"fmt"
	"strings"
)

// Error is one problem in a profile text. Line and Col are 1-based and
// count bytes within the text given to [Parse], so that a caller that
// embeds the text in a larger file can add its own offset.
type Error struct {
	Line, Col int
	Msg       string
}

// Error returns "line:col: message".
func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// ErrorList is every problem found in one text, in text order. [Parse]
// returns one when the text is not valid.
type ErrorList []*Error

// Error returns one problem per line.
func (l ErrorList) Error() string {
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
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
