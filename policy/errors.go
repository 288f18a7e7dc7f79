package policy

import (
	"errors"
	"fmt"

	"github.com/procgate/procgate/internal/srcerr"
)

// Pos is a position in a policy file. Line and Col are 1-based; Col
// counts bytes.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col", or "file:line" when Col is 0.
func (p Pos) String() string {
	if p.Col == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a policy, at a position: Error() returns
// "file:line:col: message".
type Error = srcerr.Error

// errorAt returns an Error at pos.
func errorAt(pos Pos, msg string) *Error {
	return &Error{File: pos.File, Line: pos.Line, Col: pos.Col, Msg: msg}
}

// ErrorList is every problem found, in file order. [Parse] and [Compile]
// return one when the policy is invalid.
type ErrorList = srcerr.List

// errOf returns the list as an error, nil when empty.
func errOf(l ErrorList) error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Warning is a problem that does not stop a policy from loading, such as
// a user name that does not exist on this machine.
type Warning struct {
	Pos Pos
	Msg string
}

// String returns "file:line:col: warning: message".
func (w Warning) String() string { return w.Pos.String() + ": warning: " + w.Msg }

// ErrNeverallow is matched (errors.Is) by the error [Compile] returns when
// an allow rule can grant what a neverallow forbids and no deny or protect
// covers the intersection.
var ErrNeverallow = errors.New("policy: neverallow violated")

// NeverallowError lists the violated assertions. Each [Error] is
// positioned at the allow rule and names the neverallow.
type NeverallowError struct {
	Violations ErrorList
	// Proofs are the intersections that were found covered, for the
	// report of `procgate policy check`.
	Proofs []Proof
}

// Error returns the violations, one per line.
func (e *NeverallowError) Error() string { return e.Violations.Error() }

// Is matches [ErrNeverallow].
func (e *NeverallowError) Is(target error) bool { return target == ErrNeverallow }

// Unwrap returns the violations.
func (e *NeverallowError) Unwrap() error { return e.Violations }
