package srcerr

import (
	"errors"
	"testing"
)

func TestError(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&Error{File: "a.yaml", Line: 3, Col: 7, Msg: "bad"}, "a.yaml:3:7: bad"},
		{&Error{Line: 1, Col: 1, Msg: "bad"}, "1:1: bad"},
		{List{{Line: 1, Col: 2, Msg: "x"}, {File: "f", Line: 3, Col: 4, Msg: "y"}}, "1:2: x\nf:3:4: y"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	var e *Error
	if !errors.As(error(List{{Line: 9, Col: 9, Msg: "z"}}), &e) || e.Line != 9 {
		t.Errorf("errors.As through a List: %v", e)
	}
}
