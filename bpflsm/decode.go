package bpflsm

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// decode is encode's inverse: the rule set the program enforces, read
// back from its rule-set value v and its hashed rules. It decides exactly
// as the program does; what the layout does not keep is rebuilt (a
// class's negated clauses of one kind become one clause over their union,
// which holds the same processes; classes are named by their clauses,
// rules by their classes' names; hashed rules follow the others, in the
// order of their indexes).
func decode(v *ptraceRuleset, pairs map[ptracePairKey]ptracePairVal) (*bpf.RuleSet, error) {
	n := bits.Len64(v.Classes)
	if v.Classes != 1<<n-1 || (v.Protect[0]|v.Protect[1])&^v.Classes != 0 {
		return nil, fmt.Errorf("bpflsm: rule set with classes %#x protecting %#x, %#x", v.Classes, v.Protect[0], v.Protect[1])
	}
	if v.Nuid > bpf.MaxRanges || v.Ngid > bpf.MaxRanges || v.Ngroup > bpf.MaxRanges || v.Npidns > bpf.MaxRanges || v.Ncap > bpf.MaxRanges || v.Nexe > bpf.MaxExes || v.Ncgroup > bpf.MaxCgroups {
		return nil, fmt.Errorf("bpflsm: rule set with %d/%d/%d/%d ranges, %d executables and %d cgroups", v.Nuid, v.Ngid, v.Ngroup, v.Npidns, v.Nexe, v.Ncgroup)
	}
	rs := &bpf.RuleSet{Classes: make([]bpf.Class, n), Generation: v.Generation, ExemptCgroup: v.ExemptCgroup}
	ranges := []struct {
		kind bpf.Kind
		tab  []idRange
	}{
		{bpf.KindUID, v.Uid[:v.Nuid]}, {bpf.KindGID, v.Gid[:v.Ngid]}, {bpf.KindGroup, v.Group[:v.Ngroup]},
		{bpf.KindPIDNS, v.Pidns[:v.Npidns]},
	}
	for i := range n {
		bit := uint64(1) << i
		c := &rs.Classes[i]
		for _, not := range []bool{false, true} {
			has := func(pos, neg uint64) bool {
				if not {
					return neg&bit != 0
				}
				return pos&bit != 0
			}
			for _, r := range ranges {
				if !has(v.Pos[r.kind], v.Neg[r.kind]) {
					continue
				}
				cl := bpf.Clause{Kind: r.kind, Not: not}
				for _, e := range r.tab {
					if has(e.Pos, e.Neg) {
						cl.IDs = append(cl.IDs, bpf.IDRange{Lo: e.Lo, Hi: e.Hi})
					}
				}
				c.Clauses = append(c.Clauses, cl)
			}
			if has(v.Pos[bpf.KindExe], v.Neg[bpf.KindExe]) {
				cl := bpf.Clause{Kind: bpf.KindExe, Not: not}
				for _, e := range v.Exe[:v.Nexe] {
					if has(e.Pos, e.Neg) {
						cl.Exes = append(cl.Exes, kernel.FileID{Dev: e.Dev, Ino: e.Ino})
					}
				}
				c.Clauses = append(c.Clauses, cl)
			}
			if has(v.Pos[bpf.KindCap], v.Neg[bpf.KindCap]) {
				cl := bpf.Clause{Kind: bpf.KindCap, Not: not}
				for _, e := range v.Cap[:v.Ncap] {
					if has(e.Pos, e.Neg) {
						cl.Caps |= kernel.CapSet(e.Caps)
					}
				}
				c.Clauses = append(c.Clauses, cl)
			}
			if has(v.Pos[bpf.KindCgroup], v.Neg[bpf.KindCgroup]) {
				cl := bpf.Clause{Kind: bpf.KindCgroup, Not: not}
				for _, e := range v.Cgroup[:v.Ncgroup] {
					if has(e.Pos, e.Neg) {
						cl.Cgroups = append(cl.Cgroups, decodeCgroup(e.Parent, e.Level, e.Flags, e.Name))
					}
				}
				c.Clauses = append(c.Clauses, cl)
			}
		}
		names := make([]string, len(c.Clauses))
		for j, cl := range c.Clauses {
			names[j] = cl.String()
		}
		c.Name = "{" + strings.Join(names, "; ") + "}"
	}
	for a, acc := range []bpf.Access{bpf.Read, bpf.Attach} {
		for t := range n {
			if v.Protect[a]&(1<<t) != 0 {
				rs.Rules = append(rs.Rules, decodedRule(rs, -1, t, acc))
			}
		}
		for s := range bpf.MaxClasses {
			row := v.Deny[a][s]
			if row == 0 {
				continue
			}
			if s >= n || row&^v.Classes != 0 {
				return nil, fmt.Errorf("bpflsm: rule set denies classes %#x to class %d of %d", row, s, n)
			}
			for t := range n {
				if row&(1<<t) != 0 {
					rs.Rules = append(rs.Rules, decodedRule(rs, s, t, acc))
				}
			}
		}
	}
	if err := decodePairs(rs, pairs); err != nil {
		return nil, err
	}
	return rs, nil
}

// decodePairs adds the hashed rules to rs, with their keyed classes.
func decodePairs(rs *bpf.RuleSet, pairs map[ptracePairKey]ptracePairVal) error {
	keyed := map[bpf.Key]int{}
	classOf := func(kind uint8, v [2]uint64) (int, error) {
		var k bpf.Key
		switch kind {
		case hkUID, hkGID:
			if v[0] > 0xffffffff || v[1] != 0 {
				return 0, fmt.Errorf("bpflsm: a hashed rule's id %d/%d", v[0], v[1])
			}
			k = bpf.Key{Kind: bpf.KindUID, ID: uint32(v[0])}
			if kind == hkGID {
				k.Kind = bpf.KindGID
			}
		case hkExe:
			k = bpf.Key{Kind: bpf.KindExe, Exe: kernel.FileID{Dev: v[0], Ino: v[1]}}
		default:
			return 0, fmt.Errorf("bpflsm: a hashed rule's kind %d", kind)
		}
		if i, ok := keyed[k]; ok {
			return i, nil
		}
		cl := bpf.Clause{Kind: k.Kind, IDs: []bpf.IDRange{{Lo: k.ID, Hi: k.ID}}}
		if k.Kind == bpf.KindExe {
			cl = bpf.Clause{Kind: bpf.KindExe, Exes: []kernel.FileID{k.Exe}}
		}
		rs.Classes = append(rs.Classes, bpf.Class{Name: "{" + cl.String() + "}", Clauses: []bpf.Clause{cl}})
		keyed[k] = len(rs.Classes) - 1
		return len(rs.Classes) - 1, nil
	}
	type hashed struct {
		index uint32
		rule  bpf.Rule
	}
	// In the order of the entries' first rules, so that the classes are
	// made in one order whatever the map's.
	first := func(v ptracePairVal) uint32 {
		if v.Rule[0] == 0 || v.Rule[1] != 0 && v.Rule[1] < v.Rule[0] {
			return v.Rule[1]
		}
		return v.Rule[0]
	}
	keys := make([]ptracePairKey, 0, len(pairs))
	for k := range pairs {
		if k != epochKey {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b ptracePairKey) int { return cmp.Compare(first(pairs[a]), first(pairs[b])) })
	var rules []hashed
	for _, k := range keys {
		v := pairs[k]
		t, err := classOf(k.Tkind, k.T)
		if err != nil {
			return err
		}
		s := -1
		if k.Skind != hkAny {
			if s, err = classOf(k.Skind, k.S); err != nil {
				return err
			}
		}
		for a, acc := range []bpf.Access{bpf.Read, bpf.Attach} {
			if v.Rule[a] == 0 {
				continue
			}
			rules = append(rules, hashed{v.Rule[a], decodedRule(rs, s, t, acc)})
		}
	}
	slices.SortFunc(rules, func(a, b hashed) int { return cmp.Compare(a.index, b.index) })
	for _, h := range rules {
		rs.Rules = append(rs.Rules, h.rule)
	}
	return nil
}

// decodedRule is a rule read back, its text written from its classes'
// names: "protect {uid 3333} : read", "deny {uid 0} {uid 1000} : attach".
func decodedRule(rs *bpf.RuleSet, s, t int, a bpf.Access) bpf.Rule {
	r := bpf.Rule{Subject: s, Target: t, Access: a}
	if s < 0 {
		r.Text = fmt.Sprintf("protect %s : %s", rs.Classes[t].Name, a)
	} else {
		r.Text = fmt.Sprintf("deny %s %s : %s", rs.Classes[s].Name, rs.Classes[t].Name, a)
	}
	return r
}

// decodeCgroup is a cgroup selector as the program holds it (struct
// cgroupsel), back as the model's.
func decodeCgroup(parent uint64, level, flags uint32, name [64]int8) bpf.CgroupSel {
	b := make([]byte, 0, len(name))
	for _, c := range name {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return bpf.CgroupSel{Parent: parent, Level: level, Name: string(b), Self: flags&cgSelf != 0, Below: flags&cgBelow != 0, Root: flags&cgRoot != 0}
}
