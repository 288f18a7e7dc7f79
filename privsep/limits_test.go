package privsep

import "testing"

// TestLimiter: per-uid connections and requests are bounded, another uid
// is not affected, released slots are reusable, and a uid holding
// nothing is forgotten.
func TestLimiter(t *testing.T) {
	l := NewLimiter(Limits{MaxConns: 3, MaxConnsPerUID: 2, MaxRequestsPerUID: 1})
	if got := l.Limits(); got != (Limits{3, 2, 1}) {
		t.Fatalf("limits %+v", got)
	}
	if d := NewLimiter(Limits{}).Limits(); d != (Limits{4096, 1024, 64}) {
		t.Errorf("defaults %+v", d)
	}
	if !l.AdmitUID(1) || !l.AdmitUID(1) {
		t.Fatal("uid 1 refused under its limit")
	}
	if l.AdmitUID(1) {
		t.Error("uid 1 admitted a third connection")
	}
	if !l.AdmitUID(2) {
		t.Error("uid 2 refused because of uid 1")
	}
	end, ok := l.BeginRequest(1)
	if !ok {
		t.Fatal("uid 1 refused its first request")
	}
	if _, ok := l.BeginRequest(1); ok {
		t.Error("uid 1 began a second request")
	}
	if end2, ok := l.BeginRequest(2); !ok {
		t.Error("uid 2 refused a request because of uid 1")
	} else {
		end2()
	}
	end()
	end() // idempotent
	if end, ok := l.BeginRequest(1); !ok {
		t.Error("the ended request's slot was not returned")
	} else {
		end()
	}
	l.ReleaseUID(1)
	if !l.AdmitUID(1) {
		t.Error("the released connection's slot was not returned")
	}
	l.ReleaseUID(1)
	l.ReleaseUID(1)
	l.ReleaseUID(2)
	if n := len(l.uids); n != 0 {
		t.Errorf("%d uids remembered after every slot was released", n)
	}
	for range 3 {
		l.WaitConn()
	}
	if l.Conns() != 3 {
		t.Errorf("conns = %d", l.Conns())
	}
	for range 3 {
		l.ReleaseConn()
	}
}
