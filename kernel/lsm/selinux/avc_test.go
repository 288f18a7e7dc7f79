package selinux_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/selinux"
)

func TestCacheStatsAndReload(t *testing.T) {
	w := newWorld(t, "type a_t;\ntype b_t;", true)
	c := w.task("c", 100, 1000, "u:r:a_t:s0", 0, nil)
	tg := w.task("t", 200, 1000, "u:r:b_t:s0", 0, nil)
	for range 3 {
		if d := w.w.PtraceMayAccess(c, tg, kernel.ReadFSCreds); d.Allowed {
			t.Fatal("allowed without a rule")
		}
	}
	if s := w.m.Stats(); s != (selinux.CacheStats{Lookups: 3, Hits: 2, Misses: 1}) {
		t.Errorf("Stats = %+v", s)
	}
	p, err := selinux.Parse("type a_t;\ntype b_t;\nallow a_t b_t:file read;")
	if err != nil {
		t.Fatal(err)
	}
	w.m.SetPolicy(p)
	if d := w.w.PtraceMayAccess(c, tg, kernel.ReadFSCreds); !d.Allowed {
		t.Error("a stale cache entry survived the policy load")
	}
	if s := w.m.Stats(); s.Misses != 2 {
		t.Errorf("Stats after reload = %+v", s)
	}
	w.m.SetEnforcing(false)
	if !w.w.PtraceMayAccess(c, tg, kernel.AttachFSCreds).Allowed || w.m.Enforcing() {
		t.Error("permissive mode did not take effect at once")
	}
}

// TestConcurrent runs decisions while the policy is reloaded; run with
// -race.
func TestConcurrent(t *testing.T) {
	w := newWorld(t, "type a_t;\ntype b_t;\nallow a_t b_t:file read;", true)
	var tasks []*kernel.Task
	for i := range 40 {
		tasks = append(tasks, w.task(fmt.Sprint("t", i), 100+i, 1000, fmt.Sprintf("u:r:%s:s%d", []string{"a_t", "b_t"}[i%2], i), 0, nil))
	}
	p2, _ := selinux.Parse("type a_t;\ntype b_t;\nallow a_t b_t:file read;\nallow b_t a_t:file read;")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				a, b := tasks[(i+g)%len(tasks)], tasks[(i*7+g+1)%len(tasks)]
				d := w.w.PtraceMayAccess(a, b, kernel.ReadFSCreds)
				// a_t may always read b_t, whichever policy is loaded.
				if strings.Contains(a.SELinux, "a_t") && strings.Contains(b.SELinux, "b_t") && !d.Allowed {
					t.Errorf("%s → %s denied", a.SELinux, b.SELinux)
					return
				}
			}
		}()
	}
	for i := range 50 {
		if i%2 == 0 {
			w.m.SetPolicy(p2)
		} else {
			w.m.SetPolicy(w.m.Policy())
		}
	}
	wg.Wait()
	if s := w.m.Stats(); s.Lookups != s.Hits+s.Misses || s.Lookups < 8000 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestFastPathDoesNotAllocate(t *testing.T) {
	w := newWorld(t, basePolicy+"permissive loud_t;", true)
	c := w.task("tool", 100, 1000, "user_u:user_r:c_t:s0", 0, nil)
	l := w.task("loud", 101, 1000, "user_u:user_r:loud_t:s0", 0, nil)
	tg := w.task("service", 200, 1000, "system_u:system_r:t_t:s0", 0, nil)
	for _, caller := range []*kernel.Task{c, l} {
		for _, m := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
			w.w.PtraceMayAccess(caller, tg, m) // warm the SID table and the cache
			if n := testing.AllocsPerRun(100, func() { w.w.PtraceMayAccess(caller, tg, m) }); n != 0 {
				t.Errorf("PtraceMayAccess(%s, %s): %v allocs", caller.Name, m, n)
			}
		}
	}
}

// policy10k generates a policy of 10,000 allow rules over 1,000 types in
// 20 attributes, plus the rule the benchmark exercises.
func policy10k() string {
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "attribute attr%d;\n", i)
	}
	for i := range 1000 {
		fmt.Fprintf(&b, "type t%d_t, attr%d;\n", i, i%20)
	}
	for i := range 9999 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "allow t%d_t t%d_t:file read;\n", i%1000, (i*7+3)%1000)
		case 1:
			fmt.Fprintf(&b, "allow attr%d t%d_t:process { ptrace getattr };\n", i%20, (i*13)%1000)
		case 2:
			fmt.Fprintf(&b, "dontaudit t%d_t attr%d:file read;\n", i%1000, i%20)
		default:
			fmt.Fprintf(&b, "allow { t%d_t t%d_t } self:capability sys_ptrace;\n", i%1000, (i+1)%1000)
		}
	}
	b.WriteString("allow t1_t t2_t:{ file process } { read ptrace };\n")
	return b.String()
}

// BenchmarkSELinux10k measures World.PtraceMayAccess with the capability
// module and SELinux holding a 10,000-rule policy, decisions cached.
func BenchmarkSELinux10k(b *testing.B) {
	src := policy10k()
	p, err := selinux.Parse(src)
	if err != nil {
		b.Fatal(err)
	}
	if p.Rules() != 10000 {
		b.Fatalf("%d rules", p.Rules())
	}
	w := kernel.NewWorld(kernel.DefaultRelease)
	m := selinux.New(p, true)
	w.LSMs = []kernel.LSM{capabilityModule(), m}
	ww := &world{w, m}
	c := ww.task("caller", 100, 1000, "user_u:user_r:t1_t:s0", 0, nil)
	tg := ww.task("target", 200, 1000, "system_u:system_r:t2_t:s0", 0, nil)
	for _, mode := range []kernel.Mode{kernel.ReadFSCreds, kernel.AttachRealCreds} {
		b.Run(mode.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := w.PtraceMayAccess(c, tg, mode); !d.Allowed {
					b.Fatal(d)
				}
			}
		})
	}
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.SetPolicy(p) // every decision recomputes from the avtab
			w.PtraceMayAccess(c, tg, kernel.ReadFSCreds)
		}
	})
}

// BenchmarkParse10k measures parsing and compiling the 10,000-rule policy.
func BenchmarkParse10k(b *testing.B) {
	src := policy10k()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := selinux.Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
