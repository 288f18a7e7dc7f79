package privsep

import "testing"

// TestLimiter: a uid, root included, holds at most its share; the
// general pool, once full, leaves the reserve to privileged callers
// (root at once, others provisionally); when both are full every new
// connection is refused at once, never queued; released slots are
// reusable and a uid holding nothing is forgotten.
func TestLimiter(t *testing.T) {
	if d := NewLimiter(Limits{}).Limits(); d != (Limits{MaxConns: 4096, MaxConnsPerUID: 64, MaxRequestsPerUID: 64, Reserve: 512}) {
		t.Errorf("defaults %+v", d)
	}
	l := NewLimiter(Limits{MaxConns: 7, MaxConnsPerUID: 2, MaxRequestsPerUID: 1, Reserve: 3})
	want := func(uid uint32, a Admission) {
		t.Helper()
		if got := l.Admit(uid); got != a {
			t.Fatalf("Admit(%d) = %v, want %v", uid, got, a)
		}
	}
	want(1, General)
	want(1, General)
	want(1, Refused) // its share
	want(2, General)
	if l.Pressure() {
		t.Error("pressure at 3 of 4 general slots")
	}
	want(3, General)
	if !l.Pressure() {
		t.Error("no pressure with the general pool full")
	}
	want(4, Reserved) // provisional: the front confirms or refuses it
	want(0, Reserved) // root
	want(0, Reserved)
	want(0, Refused) // root's share
	want(5, Refused) // everything taken
	if g, r := l.InUse(); g != 4 || r != 3 {
		t.Errorf("in use %d+%d", g, r)
	}
	l.Release(4, Reserved)
	want(6, Reserved)
	l.Release(1, General)
	want(5, General)

	end, ok := l.BeginRequest(2)
	if !ok {
		t.Fatal("uid 2 refused its first request")
	}
	if _, ok := l.BeginRequest(2); ok {
		t.Error("uid 2 began a second request")
	}
	if end3, ok := l.BeginRequest(3); !ok {
		t.Error("uid 3 refused a request because of uid 2")
	} else {
		end3()
	}
	end()
	end() // idempotent
	if end, ok := l.BeginRequest(2); !ok {
		t.Error("the ended request's slot was not returned")
	} else {
		end()
	}
	for _, c := range []struct {
		uid uint32
		a   Admission
	}{{1, General}, {2, General}, {3, General}, {5, General}, {0, Reserved}, {0, Reserved}, {6, Reserved}} {
		l.Release(c.uid, c.a)
	}
	l.Release(9, Refused) // a refusal holds nothing
	if g, r := l.InUse(); g != 0 || r != 0 || len(l.uids) != 0 {
		t.Errorf("after releasing everything: %d+%d in use, %d uids remembered", g, r, len(l.uids))
	}
}
