package bpflsm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// mirrorDir mounts a bpffs of the test's own.
func mirrorDir(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t, "creating BPF maps and mounting bpffs need CAP_SYS_ADMIN")
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir + "/procgate"
}

// TestMirrorMatchesCurrent: the mirror holds the rule set the maps hold,
// read back alike (Current through bpf(2), the mirror as memory), for a
// small rule set and for 10,000 hashed rules, and a reader keeps one
// decoded rule set while nothing changes.
func TestMirrorMatchesCurrent(t *testing.T) {
	exes := []kernel.FileID{{Dev: kernel.MkDev(8, 1), Ino: 42}, {Dev: kernel.MkDev(0, 30), Ino: 43}}
	r := rand.New(rand.NewPCG(3, 9))
	for _, rs := range []*bpf.RuleSet{randomRuleSet(r, exes), randomRuleSet(r, exes), bigRuleSet(10000)} {
		dir := mirrorDir(t)
		if err := PinRuleSet(rs, dir); err != nil {
			t.Fatal(err)
		}
		m, err := OpenMirror(dir)
		if err != nil || m == nil {
			t.Fatalf("open the mirror: %v, %v", m, err)
		}
		defer m.Close()
		fromMaps, err := Current(dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.RuleSet()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, fromMaps) {
			t.Errorf("the mirror's rule set differs from the maps': %d classes, %d rules; want %d, %d", len(got.Classes), len(got.Rules), len(fromMaps.Classes), len(fromMaps.Rules))
		}
		if again, _ := m.RuleSet(); again != got {
			t.Error("the mirror decoded its unchanged image again")
		}
	}
	if m, err := OpenMirror(t.TempDir()); m != nil || err != nil {
		t.Errorf("nothing pinned: %v, %v", m, err)
	}
}

// TestMirrorUnderReloads: while rule sets are swapped as fast as Reload
// goes, readers of the mirror get whole rule sets only — each one a
// reload put in, never a mix of two — and see the last one at the end;
// after Detach they get ErrDetached.
func TestMirrorUnderReloads(t *testing.T) {
	dir := mirrorDir(t)
	// Rule set i: generation i, one class of uid i, one hashed rule
	// between uids i and i+1.
	ruleSet := func(i uint32) *bpf.RuleSet {
		uid := func(u uint32) bpf.Class {
			return bpf.Class{Name: fmt.Sprint(u), Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: u, Hi: u}}}}}
		}
		range2 := bpf.Class{Name: "r", Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: i, Hi: i + 1}}}}}
		return &bpf.RuleSet{
			Classes:    []bpf.Class{range2, uid(i), uid(i + 1)},
			Rules:      []bpf.Rule{{Subject: 0, Target: 0, Access: bpf.Attach}, {Subject: 1, Target: 2, Access: bpf.Read}},
			Generation: uint64(i),
		}
	}
	if err := PinRuleSet(ruleSet(1), dir); err != nil {
		t.Fatal(err)
	}
	m, err := OpenMirror(dir)
	if err != nil || m == nil {
		t.Fatalf("open the mirror: %v, %v", m, err)
	}
	defer m.Close()
	const reloads = 60
	var done atomic.Bool
	var wg sync.WaitGroup
	var reads, mixed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				rs, err := m.RuleSet()
				if err != nil {
					t.Errorf("read during reloads: %v", err)
					return
				}
				reads.Add(1)
				g := uint32(rs.Generation)
				// Whole: its hashed rule and its range are generation g's.
				s := bpf.Match{EUID: g}
				if r := rs.Decide(s, bpf.Match{EUID: g + 1}, bpf.Read); r == nil || rs.Decide(s, bpf.Match{EUID: g + 2}, bpf.Read) != nil ||
					rs.Decide(bpf.Match{EUID: g + 1}, bpf.Match{EUID: g}, bpf.Attach) == nil || rs.Decide(bpf.Match{EUID: g + 2}, bpf.Match{EUID: g}, bpf.Attach) != nil {
					mixed.Add(1)
				}
			}
		}()
	}
	// And through the maps (bpf(2)): the slot's inner map may be swapped
	// out and freed between its lookup and its opening.
	var mapReads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			rs, err := Current(dir)
			if err != nil || rs.Generation < 1 || rs.Generation > reloads {
				t.Errorf("Current during reloads: %v, %v", rs, err)
				return
			}
			mapReads.Add(1)
		}
	}()
	for i := uint32(2); i <= reloads; i++ {
		if err := Reload(ruleSet(i), dir); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if mapReads.Load() == 0 {
		t.Error("no read of the maps during the reloads")
	}
	if mixed.Load() != 0 || reads.Load() == 0 {
		t.Errorf("%d of %d reads were not one reload's rule set", mixed.Load(), reads.Load())
	}
	if rs, err := m.RuleSet(); err != nil || rs.Generation != reloads {
		t.Errorf("after the reloads: generation %v, %v; want %d", rs, err, reloads)
	}
	t.Logf("%d reads of the mirror, %d of the maps during %d reloads", reads.Load(), mapReads.Load(), reloads-1)
	if err := Detach(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RuleSet(); !errors.Is(err, ErrDetached) {
		t.Errorf("after detach: %v, want ErrDetached", err)
	}
}

// TestMirrorFailsClosed: a mirror whose image does not decode, or that
// stays odd (a reload that never ends), gives no rule set but an error
// wrapping ErrUnreadable — the live model then fails closed — never a
// rule set it did not hold.
func TestMirrorFailsClosed(t *testing.T) {
	dir := mirrorDir(t)
	if err := PinRuleSet(bigRuleSet(10), dir); err != nil {
		t.Fatal(err)
	}
	m, err := OpenMirror(dir)
	if err != nil || m == nil {
		t.Fatalf("open the mirror: %v, %v", m, err)
	}
	defer m.Close()
	w, err := openMirrorRW(dir)
	if err != nil || w == nil {
		t.Fatalf("map the mirror for writing: %v", err)
	}
	defer w.close()
	if _, err := m.RuleSet(); err != nil {
		t.Fatal(err)
	}
	// A reload that never ends.
	w.begin()
	start := time.Now()
	if rs, err := m.RuleSet(); rs != nil || !errors.Is(err, ErrUnreadable) {
		t.Errorf("while odd: %v, %v; want ErrUnreadable", rs, err)
	}
	if d := time.Since(start); d < mirrorWait {
		t.Errorf("gave up after %v, before the %v a reload may take", d, mirrorWait)
	}
	// Images that do not decode: cut short, and an epoch that is not
	// its hashed rules'.
	n := *w.word(mirrorLen)
	for _, tc := range []struct {
		name string
		mut  func()
	}{
		{"cut short", func() { *w.word(mirrorLen) = n - 8 }},
		{"too long", func() { *w.word(mirrorLen) = uint64(len(w.mem)) }},
		{"another epoch", func() { *w.word(mirrorLen) = n; w.mem[mirrorHeader*8+int(binarySizeRuleSetEpochOffset())]++ }},
	} {
		w.begin()
		tc.mut()
		w.end(nil)
		if rs, err := m.RuleSet(); rs != nil || !errors.Is(err, ErrUnreadable) {
			t.Errorf("%s: %v, %v; want ErrUnreadable", tc.name, rs, err)
		}
	}
}

// binarySizeRuleSetEpochOffset is the offset of the epoch in the image
// of a rule set (struct ruleset's field, as binary.Write lays it out).
func binarySizeRuleSetEpochOffset() int {
	var v ptraceRuleset
	return int(unsafe.Offsetof(v.Epoch))
}
