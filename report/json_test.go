package report

import (
	"reflect"
	"strings"
	"testing"
)

// TestEdgeAccessNames: the JSON fields of an edge's answers are the
// accesses, in order, as Access.String names them.
func TestEdgeAccessNames(t *testing.T) {
	ty := reflect.TypeFor[edgeAccess]()
	if ty.NumField() != int(NumAccess) {
		t.Fatalf("edgeAccess has %d fields, want %d", ty.NumField(), NumAccess)
	}
	for a := range NumAccess {
		tag, _, _ := strings.Cut(ty.Field(int(a)).Tag.Get("json"), ",")
		if tag != a.String() {
			t.Errorf("field %d is %q, want %q", a, tag, a)
		}
	}
}
