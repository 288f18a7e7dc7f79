package oracle

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// plainMatrix returns nt×np plain (no namespace, no Landlock) cases over a
// small alphabet of uids, gids, caps and dumpable flags.
func plainMatrix(nt, np int) []Case {
	spec := func(k int) Creds {
		uid := uint32(1000 + k%3*1000)
		c := User(uid, uid)
		switch k / 3 % 7 {
		case 1:
			c.Dumpable = 0
		case 2:
			c.CapEff, c.CapPrm = CapMask(CapSysPtrace), CapMask(CapSysPtrace)
		case 3:
			c.CapPrm = CapMask(CapNetRaw)
		case 4:
			c.FSUID = uid + 1
		case 5:
			c.Groups = []uint32{uid + 5}
		case 6:
			c.RUID = uid + 7
		}
		c.SGID = c.SGID + uint32(k/21)
		return c
	}
	var cases []Case
	for i := range nt {
		for j := range np {
			cases = append(cases, Case{Target: spec(i), Prober: spec(j)})
		}
	}
	return cases
}

// TestWindows checks that a batch cut into windows of few targets gives the
// same answers as one window.
func TestWindows(t *testing.T) {
	needRunner(t)
	small, err := NewRunner(Options{MaxTargets: 3, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	cases := plainMatrix(10, 6)
	cases = append(cases, Case{Name: "self", Prober: User(1000, 1000), Relation: RelSelf},
		Case{Name: "shared", Target: User(1000, 1000), Prober: User(1000, 1000), Landlock: LandlockShared})
	want := runCases(t, cases)
	got, err := small.Run(context.Background(), cases)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cases {
		if got[i].Err != nil {
			t.Fatalf("case %d refused: %v", i, got[i].Err)
		}
		if !reflect.DeepEqual(answers(&got[i]), answers(&want[i])) {
			t.Errorf("case %d: windows %s, one window %s", i, summary(&got[i]), summary(&want[i]))
		}
	}
}

// mixedMatrix resembles the prototype's host matrix: 19 targets × 27
// probers with ids, caps, dumpable, NNP, namespaces and Landlock, plus
// relation and shared-domain cases.
func mixedMatrix() []Case {
	a, b := User(1000, 1000), User(2000, 2000)
	full := FullCaps()
	owned := UserNS{Kind: NSOwned, Owner: 1000, OwnerGID: 1000}
	mod := func(c Creds, f func(*Creds)) Creds { f(&c); return c }
	targets := []Creds{
		a, b,
		mod(a, func(c *Creds) { c.SUID = 0 }),
		mod(a, func(c *Creds) { c.RUID = 2000 }),
		mod(a, func(c *Creds) { c.EUID = 2000 }),
		mod(a, func(c *Creds) { c.EGID = 2000 }),
		mod(a, func(c *Creds) { c.FSUID = 2000 }),
		mod(a, func(c *Creds) { c.Groups = []uint32{3000} }),
		mod(a, func(c *Creds) { c.Dumpable = 0 }),
		a.WithCaps(CapMask(CapNetRaw), CapMask(CapNetRaw)),
		a.WithCaps(0, CapMask(CapNetRaw)),
		mod(a, func(c *Creds) { c.NoNewPrivs = true }),
		Root(full), Root(0),
		mod(Root(full), func(c *Creds) { c.Dumpable = 0 }),
		a.InNS(UserNS{Kind: NSRoot}),
		Root(full).InNS(owned),
		Root(0).InNS(owned),
		mod(Root(full), func(c *Creds) { c.Dumpable = 0 }).InNS(owned),
	}
	ptr := CapMask(CapSysPtrace)
	probers := []Creds{
		a, b,
		mod(a, func(c *Creds) { c.FSUID = 2000 }),
		mod(a, func(c *Creds) { c.FSGID = 2000 }),
		mod(a, func(c *Creds) { c.RUID = 2000 }),
		mod(a, func(c *Creds) { c.EUID, c.SUID, c.FSUID = 2000, 2000, 2000 }),
		mod(a, func(c *Creds) { c.EUID, c.SUID = 2000, 2000 }),
		User(1000, 2000),
		mod(User(1000, 3000), func(c *Creds) { c.Groups = []uint32{1000} }),
		b.WithCaps(ptr, ptr), b.WithCaps(0, ptr),
		b.WithCaps(ptr|CapMask(CapDacReadSearch), ptr|CapMask(CapDacReadSearch)),
		b.WithCaps(CapMask(CapDacOverride), CapMask(CapDacOverride)),
		a.WithCaps(CapMask(CapNetRaw), CapMask(CapNetRaw)),
		a.WithCaps(0, CapMask(CapNetRaw)),
		Root(full &^ CapMask(CapSysAdmin, CapPerfmon)), a.WithCaps(full, full), Root(0),
		mod(a, func(c *Creds) { c.NoNewPrivs = true }),
		a.InNS(UserNS{Kind: NSRoot}),
		Root(full).InNS(owned),
		Root(0).InNS(owned),
		Root(0).InNS(UserNS{Kind: NSOwned, Owner: 2000, OwnerGID: 2000}),
		a.WithCaps(CapMask(CapPerfmon), CapMask(CapPerfmon)),
		b.WithCaps(CapMask(CapSysAdmin), CapMask(CapSysAdmin)),
		Root(full), b.WithCaps(ptr, full),
	}
	var cases []Case
	for _, t := range targets {
		for _, p := range probers {
			cases = append(cases, Case{Target: t, Prober: p})
		}
	}
	for _, l := range []Landlock{LandlockProberOnly, LandlockTargetOnly, LandlockSibling, LandlockShared, LandlockNested, LandlockNestedReverse} {
		cases = append(cases, Case{Target: a, Prober: a, Landlock: l}, Case{Target: a, Prober: Root(full), Landlock: l})
	}
	cases = append(cases, Case{Target: a, Prober: a, Relation: RelParent}, Case{Prober: a, Relation: RelThread})
	return cases
}

// TestMixedMatrix runs a prototype-like matrix twice and requires identical
// answers (determinism), reporting cases per second.
func TestMixedMatrix(t *testing.T) {
	needRunner(t)
	cases := mixedMatrix()
	start := time.Now()
	first := runCases(t, cases)
	el := time.Since(start)
	t.Logf("mixed matrix: %d cases × %d probes in %v: %.0f cases/s", len(cases), len(AllProbes), el.Round(time.Millisecond), float64(len(cases))/el.Seconds())
	second := runCases(t, cases)
	for i := range cases {
		if !reflect.DeepEqual(answers(&first[i]), answers(&second[i])) {
			t.Errorf("case %d nondeterministic:\n %s\n %s", i, summary(&first[i]), summary(&second[i]))
		}
	}
}
