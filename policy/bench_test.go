package policy

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkDecide measures the decision on a cache hit with the §6.3
// example policy: Decide classifies both processes on every call,
// DecideSets uses sets classified beforehand (what the broker keeps per
// connection and per target).
func BenchmarkDecide(b *testing.B) {
	p := mustLoad(b, brokerPolicy)
	b.Run("hit", func(b *testing.B) {
		p.Decide(alice, appA, 0, ItemAttach)
		b.ReportAllocs()
		for b.Loop() {
			p.Decide(alice, appA, 0, ItemAttach)
		}
	})
	b.Run("sets_hit", func(b *testing.B) {
		ss, ts := p.SubjectSet(alice), p.TargetSet(appA)
		facts := p.Relate(alice, appA, 0)
		p.DecideSets(ss, ts, facts, ItemMem)
		b.ReportAllocs()
		for b.Loop() {
			p.DecideSets(ss, ts, facts, ItemMem)
		}
	})
	b.Run("hit_parallel", func(b *testing.B) {
		subjects := []*Subject{nodeExp, lsofPod, alice, bob}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				p.Decide(subjects[i&3], appA, 0, ItemIO)
				i++
			}
		})
	})
	b.Run("explain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Explain(alice, sshdA, 0, ItemAttach)
		}
	})
}

// bigPolicy generates a policy of n rules over 500 subject and 500
// target classes (uid, group, exe and cgroup selectors), with every
// effect, conditions, attributes and neverallows.
func bigPolicy(n int) string {
	r := rand.New(rand.NewPCG(4, 2))
	var b strings.Builder
	b.WriteString("option default_audit denied;\n")
	for i := range 400 {
		fmt.Fprintf(&b, "subject su%d { uid %d; }\n", i, 1000+i)
		fmt.Fprintf(&b, "target tu%d { uid %d; }\n", i, 1000+i)
	}
	for i := range 100 {
		fmt.Fprintf(&b, "subject sg%d { group %d; not uid 0; }\n", i, 2000+i)
		fmt.Fprintf(&b, "target tc%d { cgroup /kubepods.slice/pod%d/**; }\n", i, i)
	}
	for i := range 20 {
		fmt.Fprintf(&b, "attribute ta%d = tu%d tu%d tc%d;\n", i, i, i+20, i)
	}
	items := ItemNames()
	for i := range n {
		subj := fmt.Sprintf("su%d", r.IntN(400))
		if r.IntN(4) == 0 {
			subj = fmt.Sprintf("sg%d", r.IntN(100))
		}
		var tgt string
		switch k := r.IntN(20); {
		case k == 0:
			tgt = "*"
		case k < 3:
			tgt = fmt.Sprintf("ta%d", r.IntN(20))
		case k < 8:
			tgt = fmt.Sprintf("tc%d", r.IntN(100))
		default:
			tgt = fmt.Sprintf("tu%d", r.IntN(400))
		}
		eff := []string{"allow", "allow", "allow", "allow", "deny", "auditallow", "dontaudit"}[r.IntN(7)]
		var access string
		if r.IntN(8) == 0 {
			access = "attach"
			if eff == "allow" {
				access += " when same_uid"
			}
		} else {
			var its []string
			for range 1 + r.IntN(5) {
				it := items[r.IntN(int(firstAttach))]
				if !strings.Contains(strings.Join(its, " "), it) {
					its = append(its, it)
				}
			}
			access = "read { " + strings.Join(its, " ") + " }"
			if r.IntN(5) == 0 {
				access += " when same_container"
			}
		}
		fmt.Fprintf(&b, "%s %s %s : %s; # rule %d\n", eff, subj, tgt, access, i)
	}
	b.WriteString("protect tu0 : attach;\nneverallow * tu0 : attach;\n")
	return b.String()
}

// BenchmarkDecideMiss10k measures a cache miss with 10,000 rules: the
// slot is cleared before every decision, so each one runs the index.
func BenchmarkDecideMiss10k(b *testing.B) {
	p := mustLoad(b, bigPolicy(10000))
	s := &Subject{Process: Process{UID: 1005, GID: 1005, Groups: []uint32{2001, 2002, 2003}}}
	t := &Target{Process: Process{UID: 1007, GID: 1007, Cgroup: "/kubepods.slice/pod7/c.scope"}, Dumpable: true}
	ss, ts := p.SubjectSet(s), p.TargetSet(t)
	facts := p.Relate(s, t, 0)
	slot := &p.cache.slots[(hashKey(ss.key, ts.key, facts)>>4)&(avcSlots-1)]
	b.ReportAllocs()
	for b.Loop() {
		slot.Store(nil)
		p.DecideSets(ss, ts, facts, ItemIO)
	}
	if c := p.Counters(); c.Hits > 1 {
		b.Fatalf("expected misses only: %+v", c)
	}
}

// BenchmarkCompile10k measures parsing and compiling 10,000 rules; MiB
// is the heap the compiled policy keeps, alloc-MiB what compiling
// allocated in all.
func BenchmarkCompile10k(b *testing.B) {
	src := []byte(bigPolicy(10000))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	var live float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f, err := Parse("big.pol", src)
		if err != nil {
			b.Fatal(err)
		}
		p, err := CompileWith(testResolver, f)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		live = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		runtime.KeepAlive(p)
	}
	b.ReportMetric(live, "MiB")
}
