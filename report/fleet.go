package report

import (
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"time"
)

// Version is the version of the JSON document (docs/report.md).
const Version = 1

// Report is the report on one or more machines.
type Report struct {
	Version   int        `json:"version"`
	Generated time.Time  `json:"generated"`
	Machines  []*Machine `json:"machines"`
	// Merged sums the machines of a fleet (nil for a single machine).
	Merged *Merged `json:"merged,omitempty"`
}

// Merged is a fleet's report: classes and findings merged by key across
// machines.
type Merged struct {
	Machines   int             `json:"machines"`
	Processes  int             `json:"processes"`
	Counts     Counts          `json:"counts"`
	Principals []MergedClass   `json:"principals"`
	Targets    []MergedClass   `json:"targets"`
	Findings   []MergedFinding `json:"findings"`
}

// MergedClass is one class key and the machines it appears on.
type MergedClass struct {
	Key       string   `json:"key"`
	Label     string   `json:"label"`
	Processes int      `json:"processes"`
	Machines  []string `json:"machines"`
}

// MergedFinding is one finding (kind, principal, target, access) and
// the machines it is found on.
type MergedFinding struct {
	Severity       Severity `json:"severity"`
	Kind           string   `json:"kind"`
	PrincipalLabel string   `json:"principal_label"`
	TargetLabel    string   `json:"target_label"`
	Access         string   `json:"access"`
	Pairs          int      `json:"pairs"`
	Machines       []string `json:"machines"`
}

// New returns the report on machines, merged when there are several.
func New(machines []*Machine, now time.Time) *Report {
	r := &Report{Version: Version, Generated: now.UTC(), Machines: machines}
	if len(machines) > 1 {
		r.Merged = merge(machines)
	}
	return r
}

func merge(ms []*Machine) *Merged {
	g := &Merged{Machines: len(ms), Counts: Counts{Pairs: map[string]int{}, Edges: map[string]int{}, Findings: map[string]map[Severity]int{}}}
	classes := func(list func(*Machine) []*Class) []MergedClass {
		idx := map[string]int{}
		var out []MergedClass
		for _, m := range ms {
			for _, c := range list(m) {
				i, ok := idx[c.Key]
				if !ok {
					i = len(out)
					idx[c.Key] = i
					out = append(out, MergedClass{Key: c.Key, Label: c.Label})
				}
				out[i].Processes += len(c.Members)
				out[i].Machines = append(out[i].Machines, m.Name)
			}
		}
		slices.SortStableFunc(out, func(a, b MergedClass) int { return cmp.Compare(b.Processes, a.Processes) })
		return out
	}
	g.Principals = classes(func(m *Machine) []*Class { return m.Principals })
	g.Targets = classes(func(m *Machine) []*Class { return m.Targets })
	type fk struct{ kind, p, t, access string }
	idx := map[fk]int{}
	for _, m := range ms {
		g.Processes += m.Processes
		c := m.Count()
		for k, v := range c.Pairs {
			g.Counts.Pairs[k] += v
		}
		for k, v := range c.Edges {
			g.Counts.Edges[k] += v
		}
		for k, sv := range c.Findings {
			if g.Counts.Findings[k] == nil {
				g.Counts.Findings[k] = map[Severity]int{}
			}
			for s, v := range sv {
				g.Counts.Findings[k][s] += v
			}
		}
		for _, f := range m.Findings {
			k := fk{f.Kind, m.Class(f.Principal).Key, m.Class(f.Target).Key, f.Access}
			i, ok := idx[k]
			if !ok {
				i = len(g.Findings)
				idx[k] = i
				g.Findings = append(g.Findings, MergedFinding{Severity: f.Severity, Kind: f.Kind,
					PrincipalLabel: f.PrincipalLabel, TargetLabel: f.TargetLabel, Access: f.Access})
			}
			mf := &g.Findings[i]
			mf.Pairs += f.Pairs
			if !slices.Contains(mf.Machines, m.Name) {
				mf.Machines = append(mf.Machines, m.Name)
			}
		}
	}
	slices.SortStableFunc(g.Findings, func(a, b MergedFinding) int {
		return cmp.Or(cmp.Compare(a.Severity.order(), b.Severity.order()), cmp.Compare(len(b.Machines), len(a.Machines)), cmp.Compare(b.Pairs, a.Pairs))
	})
	if g.Findings == nil {
		g.Findings = []MergedFinding{}
	}
	return g
}

// edgeAccess is an edge's answers as JSON writes them: one field per
// access, named as Access.String names it.
type edgeAccess struct {
	Visible         Answer `json:"visible"`
	ReadFSCreds     Answer `json:"read_fscreds"`
	ReadRealCreds   Answer `json:"read_realcreds"`
	AttachRealCreds Answer `json:"attach_realcreds"`
	AttachFSCreds   Answer `json:"attach_fscreds"`
}

// MarshalJSON writes an edge with its answers as an object keyed by
// access name.
func (e *Edge) MarshalJSON() ([]byte, error) {
	type plain Edge
	a := &e.Answers
	return json.Marshal(struct {
		*plain
		Access edgeAccess `json:"access"`
	}{(*plain)(e), edgeAccess{a[Visible], a[ReadFS], a[ReadReal], a[AttachReal], a[AttachFS]}})
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
