//go:build !race

package oracle

// Speed measurements. They measure the race detector when it is on (every
// spawned role is an instrumented process), so they run in the build
// without it; the correctness tests run in both.

import (
	"context"
	"testing"
	"time"
)

// TestPooledThroughput runs 1,000 plain cases (20 targets × 50 probers, all
// 19 probes each) through the pool and reports cases per second.
func TestPooledThroughput(t *testing.T) {
	r := needRunner(t)
	cases := plainMatrix(20, 50)
	start := time.Now()
	res, err := r.Run(context.Background(), cases)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	for i := range res {
		if res[i].Err != nil {
			t.Fatalf("case %d refused: %v", i, res[i].Err)
		}
	}
	rate := float64(len(cases)) / el.Seconds()
	t.Logf("pooled: %d cases × %d probes in %v: %.0f cases/s, %.3f ms/case", len(cases), len(AllProbes), el.Round(time.Millisecond), rate, el.Seconds()*1000/float64(len(cases)))
	if rate < 100 {
		t.Errorf("pooled throughput %.0f cases/s is far below the 500 cases/s target", rate)
	}
}

// BenchmarkPooled1000 measures one pooled batch of 1,000 plain cases.
func BenchmarkPooled1000(b *testing.B) {
	r := needRunner(b)
	cases := plainMatrix(20, 50)
	for b.Loop() {
		if _, err := r.Run(context.Background(), cases); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(cases)*b.N)/b.Elapsed().Seconds(), "cases/s")
}

// TestTimings reports the cost per case of each kind, one pair per case
// (NoPool) and pooled, for comparison with the prototype's 4.4 ms.
func TestTimings(t *testing.T) {
	needRunner(t)
	single, err := NewRunner(Options{NoPool: true})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	u1 := User(1000, 1000)
	kinds := []struct {
		name string
		c    Case
	}{
		{"plain", Case{Target: User(2000, 2000), Prober: u1}},
		{"namespace made by root", Case{Target: u1.InNS(UserNS{Kind: NSRoot}), Prober: u1}},
		{"namespace owned by a uid", Case{Target: Root(0).InNS(UserNS{Kind: NSOwned, Owner: 1000, OwnerGID: 1000}), Prober: u1}},
		{"landlock launcher", Case{Target: u1, Prober: u1, Landlock: LandlockNested}},
		{"prober is parent", Case{Target: u1, Prober: u1, Relation: RelParent}},
	}
	const n = 40
	for _, k := range kinds {
		cases := make([]Case, n)
		for i := range cases {
			cases[i] = k.c
			cases[i].Prober.Groups = []uint32{uint32(5000 + i)} // distinct probers: no pooling
		}
		for _, rr := range []struct {
			name string
			r    *Runner
		}{{"pooled", needRunner(t)}, {"single", single}} {
			start := time.Now()
			res, err := rr.r.Run(context.Background(), cases)
			if err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			for i := range res {
				if res[i].Err != nil {
					t.Fatalf("%s case %d refused: %v", k.name, i, res[i].Err)
				}
			}
			t.Logf("%-26s %-6s %d cases (distinct probers): %.2f ms/case wall, 2 workers", k.name, rr.name, n, el.Seconds()*1000/n)
		}
	}
}
