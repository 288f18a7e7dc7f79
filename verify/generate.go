package verify

import (
	"fmt"
	"math/rand/v2"

	"github.com/procgate/procgate/oracle"
)

// The capability alphabet: the capabilities that decide ptrace and /proc
// access, and one that decides nothing (CAP_NET_RAW).
var capAlphabet = []int{
	oracle.CapSysPtrace, oracle.CapDacReadSearch, oracle.CapDacOverride,
	oracle.CapSysAdmin, oracle.CapPerfmon, oracle.CapNetRaw,
}

// Generate returns n cases for kernel k: the fixed grid first (cut short
// when n is smaller), then a sample drawn from a generator seeded with
// seed. The same seed, n and kernel always give the same cases. Cases
// that need a module the kernel lacks (PR_SET_PTRACER needs Yama) are
// left out.
func Generate(k Kernel, seed uint64, n int) []oracle.Case {
	cases := Grid(k)
	if len(cases) >= n {
		return cases[:n]
	}
	g := newGen(k, seed)
	for len(cases) < n {
		cases = append(cases, g.next(len(cases)))
	}
	return cases
}

// Grid is the fixed part of the sample: every prober kind against every
// target kind as siblings, then each relation and Landlock layout over a
// few pairs, then user namespaces.
func Grid(k Kernel) []oracle.Case {
	type kind struct {
		name string
		c    oracle.Creds
	}
	u := oracle.User
	cm := oracle.CapMask
	full := oracle.FullCaps()
	probers := []kind{
		{"user", u(1000, 1000)},
		{"user+SYS_PTRACE", u(1000, 1000).WithCaps(cm(oracle.CapSysPtrace), cm(oracle.CapSysPtrace))},
		{"user+SYS_PTRACE permitted only", u(1000, 1000).WithCaps(0, cm(oracle.CapSysPtrace))},
		{"user+DAC_READ_SEARCH", u(1000, 1000).WithCaps(cm(oracle.CapDacReadSearch), cm(oracle.CapDacReadSearch))},
		{"user+DAC_OVERRIDE", u(1000, 1000).WithCaps(cm(oracle.CapDacOverride), cm(oracle.CapDacOverride))},
		{"user+SYS_PTRACE+DAC_READ_SEARCH", u(1000, 1000).WithCaps(cm(oracle.CapSysPtrace, oracle.CapDacReadSearch), cm(oracle.CapSysPtrace, oracle.CapDacReadSearch))},
		{"user+SYS_ADMIN", u(1000, 1000).WithCaps(cm(oracle.CapSysAdmin), cm(oracle.CapSysAdmin))},
		{"user+PERFMON", u(1000, 1000).WithCaps(cm(oracle.CapPerfmon), cm(oracle.CapPerfmon))},
		{"user+PERFMON+DAC_READ_SEARCH", u(1000, 1000).WithCaps(cm(oracle.CapPerfmon, oracle.CapDacReadSearch), cm(oracle.CapPerfmon, oracle.CapDacReadSearch))},
		{"user+NET_RAW", u(1000, 1000).WithCaps(cm(oracle.CapNetRaw), cm(oracle.CapNetRaw))},
		{"root", oracle.Root(full)},
		{"root without caps", oracle.Root(0)},
		{"root without SYS_PTRACE", oracle.Root(full &^ cm(oracle.CapSysPtrace))},
		{"fsuid 2000", func() oracle.Creds { c := u(1000, 1000); c.FSUID = 2000; return c }()},
		{"ruid 2000", func() oracle.Creds { c := u(1000, 1000); c.RUID = 2000; return c }()},
		{"in group 2000", func() oracle.Creds { c := u(1000, 1000); c.Groups = []uint32{2000}; return c }()},
		{"not dumpable", func() oracle.Creds { c := u(1000, 1000); c.Dumpable = 0; return c }()},
	}
	targets := []kind{
		{"same user", u(1000, 1000)},
		{"same user, not dumpable", func() oracle.Creds { c := u(1000, 1000); c.Dumpable = 0; return c }()},
		{"other user", u(2000, 2000)},
		{"other user, not dumpable", func() oracle.Creds { c := u(2000, 2000); c.Dumpable = 0; return c }()},
		{"same uid, other gid", u(1000, 2000)},
		{"saved uid 0", func() oracle.Creds { c := u(1000, 1000); c.SUID = 0; return c }()},
		{"fsuid 0", func() oracle.Creds { c := u(1000, 1000); c.FSUID = 0; return c }()},
		{"root", oracle.Root(full)},
		{"root, not dumpable", func() oracle.Creds { c := oracle.Root(full); c.Dumpable = 0; return c }()},
		{"same user with SYS_PTRACE", u(1000, 1000).WithCaps(cm(oracle.CapSysPtrace), cm(oracle.CapSysPtrace))},
	}
	var cases []oracle.Case
	add := func(name string, c oracle.Case) {
		c.Name = name
		if c.Validate() == nil {
			cases = append(cases, c)
		}
	}
	for _, p := range probers {
		for _, t := range targets {
			add(fmt.Sprintf("grid: %s → %s", p.name, t.name), oracle.Case{Prober: p.c, Target: t.c})
		}
	}
	rels := []oracle.Relation{oracle.RelSelf, oracle.RelThread, oracle.RelParent}
	if k.Has("yama") {
		rels = append(rels, oracle.RelPtracerAny)
	}
	for _, rel := range rels {
		for _, p := range probers[:4] {
			for _, t := range targets[:4] {
				add(fmt.Sprintf("grid %s: %s → %s", rel, p.name, t.name), oracle.Case{Prober: p.c, Target: t.c, Relation: rel})
			}
		}
	}
	if k.Has("landlock") {
		layouts := []oracle.Landlock{oracle.LandlockProberOnly, oracle.LandlockTargetOnly, oracle.LandlockShared,
			oracle.LandlockNested, oracle.LandlockNestedReverse, oracle.LandlockSibling}
		for _, l := range layouts {
			for _, p := range []kind{probers[0], probers[1], probers[10]} {
				add(fmt.Sprintf("grid landlock %s: %s → same user", l, p.name), oracle.Case{Prober: p.c, Target: targets[0].c, Landlock: l})
			}
		}
		for _, rel := range []oracle.Relation{oracle.RelSelf, oracle.RelThread} {
			add(fmt.Sprintf("grid landlock prober-only %s", rel), oracle.Case{Prober: probers[0].c, Landlock: oracle.LandlockProberOnly, Relation: rel})
		}
	}
	// hidepid: every procfs option over a few pairs.
	for _, opts := range procOptions {
		for _, p := range []kind{probers[0], probers[1], probers[3], probers[15]} {
			for _, t := range []kind{targets[0], targets[1], targets[2], targets[7]} {
				add(fmt.Sprintf("grid procfs %s: %s → %s", opts, p.name, t.name), oracle.Case{Prober: p.c, Target: t.c, Proc: opts})
			}
		}
		add(fmt.Sprintf("grid procfs %s: self", opts), oracle.Case{Prober: probers[0].c, Relation: oracle.RelSelf, Proc: opts})
		add(fmt.Sprintf("grid procfs %s: thread", opts), oracle.Case{Prober: probers[0].c, Relation: oracle.RelThread, Proc: opts})
	}
	// User namespaces: a namespace made by root (ids 100000+), and one
	// owned by uid 1000 or 2000 (only id 0 mapped).
	rootNS := oracle.UserNS{Kind: oracle.NSRoot, Base: 100000}
	owned := func(uid uint32) oracle.UserNS {
		return oracle.UserNS{Kind: oracle.NSOwned, Owner: uid, OwnerGID: uid}
	}
	nsRoot := oracle.Root(full)
	nsTargets := []kind{
		{"root of a root-made namespace", nsRoot.InNS(rootNS)},
		{"user 1000 of a root-made namespace", u(1000, 1000).InNS(rootNS)},
		{"root of a namespace owned by 1000", nsRoot.InNS(owned(1000))},
		{"root of a namespace owned by 2000", nsRoot.InNS(owned(2000))},
		{"root without caps of a namespace owned by 1000", oracle.Root(0).InNS(owned(1000))},
	}
	nsProbers := append([]kind{}, probers[0], probers[1], probers[10], probers[11])
	nsProbers = append(nsProbers, nsTargets...)
	for _, p := range nsProbers {
		for _, t := range append(nsTargets, targets[0], targets[2]) {
			add(fmt.Sprintf("grid userns: %s → %s", p.name, t.name), oracle.Case{Prober: p.c, Target: t.c})
		}
	}
	return cases
}

// procOptions are the procfs instances cases probe through besides /proc.
var procOptions = []string{
	"hidepid=noaccess", "hidepid=invisible", "hidepid=ptraceable",
	"hidepid=invisible,gid=2000", "hidepid=noaccess,gid=1000", "hidepid=ptraceable,gid=2000",
}

// gen draws random cases over pools of process credentials, so that the
// oracle's pool reuses processes.
type gen struct {
	k       Kernel
	rng     *rand.Rand
	probers []oracle.Creds
	targets []oracle.Creds
	full    uint64
}

// poolSize is the number of distinct prober and target credentials a
// random sample draws from. Every distinct credential set is a process
// to spawn, and spawning is most of a run's cost (docs/benchmarks.md);
// 16 of each give 256 pairs, each crossed with every relation and
// procfs instance, and the mutation test kills every mutant with them,
// as with 48.
const poolSize = 16

func newGen(k Kernel, seed uint64) *gen {
	g := &gen{k: k, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), full: oracle.FullCaps()}
	for len(g.probers) < poolSize {
		if c := g.creds(true); c.Validate() == nil {
			g.probers = append(g.probers, c)
		}
	}
	for len(g.targets) < poolSize {
		if c := g.creds(false); c.Validate() == nil {
			g.targets = append(g.targets, c)
		}
	}
	return g
}

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

func (g *gen) pick(ids []uint32) uint32 { return ids[g.rng.IntN(len(ids))] }

// creds draws one set of credentials.
func (g *gen) creds(prober bool) oracle.Creds {
	ids := []uint32{0, 1000, 2000, 3000}
	base := uint32(1000)
	if !prober {
		base = g.pick(ids)
	} else if g.chance(0.15) {
		base = 0
	}
	c := oracle.User(base, base)
	if g.chance(0.3) {
		field := []*uint32{&c.RUID, &c.EUID, &c.SUID, &c.FSUID}[g.rng.IntN(4)]
		*field = g.pick(ids)
	}
	if g.chance(0.2) {
		field := []*uint32{&c.RGID, &c.EGID, &c.SGID, &c.FSGID}[g.rng.IntN(4)]
		*field = g.pick(ids)
	}
	if g.chance(0.2) {
		c.Groups = []uint32{g.pick(ids[1:])}
	}
	if c.EUID == 0 && g.chance(0.5) {
		c.CapEff, c.CapPrm = g.full, g.full
	} else {
		for _, cp := range capAlphabet {
			if g.chance(0.25) {
				c.CapPrm |= oracle.CapMask(cp)
				if g.chance(0.7) {
					c.CapEff |= oracle.CapMask(cp)
				}
			}
		}
	}
	if g.chance(0.25) {
		c.Dumpable = 0
	}
	c.NoNewPrivs = g.chance(0.15)
	switch r := g.rng.Float64(); {
	case r < 0.08:
		c.UserNS = oracle.UserNS{Kind: oracle.NSRoot, Base: []uint32{100000, 200000}[g.rng.IntN(2)]}
	case r < 0.16:
		owner := g.pick(ids[1:])
		c.UserNS = oracle.UserNS{Kind: oracle.NSOwned, Owner: owner, OwnerGID: owner}
		caps := c.CapPrm
		c = oracle.User(0, 0).WithCaps(caps&c.CapEff, caps)
		if g.chance(0.5) {
			c.CapEff, c.CapPrm = g.full, g.full
		}
		c.UserNS = oracle.UserNS{Kind: oracle.NSOwned, Owner: owner, OwnerGID: owner}
	}
	return c
}

// next draws one case. A case with a process tree of its own (the prober
// as the target's parent) or a Landlock layout draws its credentials from
// the first specialPool of each pool: every such layout multiplies the
// processes the oracle must spawn (a prober restricted by Landlock is
// another process than the same credentials unrestricted), and these
// layouts decide by the tree and the domains, which the grid already
// crosses with every kind of credentials.
func (g *gen) next(i int) oracle.Case {
	for {
		c := oracle.Case{Name: fmt.Sprintf("random #%d", i)}
		switch r := g.rng.Float64(); {
		case r < 0.04:
			c.Relation = oracle.RelSelf
		case r < 0.08:
			c.Relation = oracle.RelThread
		case r < 0.13:
			c.Relation = oracle.RelParent
		case r < 0.18 && g.k.Has("yama"):
			c.Relation = oracle.RelPtracerAny
		}
		if g.chance(0.15) {
			c.Proc = procOptions[g.rng.IntN(len(procOptions))]
		}
		if g.k.Has("landlock") && g.chance(0.2) {
			all := []oracle.Landlock{oracle.LandlockProberOnly, oracle.LandlockTargetOnly, oracle.LandlockSibling,
				oracle.LandlockShared, oracle.LandlockNested, oracle.LandlockNestedReverse}
			c.Landlock = all[g.rng.IntN(len(all))]
		}
		np, nt := len(g.probers), len(g.targets)
		if c.Relation == oracle.RelParent || c.Landlock != "" {
			np, nt = specialPool, specialPool
		}
		c.Prober = g.probers[g.rng.IntN(np)]
		c.Target = g.targets[g.rng.IntN(nt)]
		if c.Validate() == nil {
			return c
		}
	}
}

// specialPool is the number of credentials of each pool that cases with
// a process tree or a Landlock layout draw from: with six layouts and the
// tree, each credential set more is about ten processes more (a fixed
// cost of a run: 140 processes in all with 4, 121 with 2).
const specialPool = 2
