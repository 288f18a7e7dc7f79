package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// textEdges bounds the edges the terminal table lists per machine.
const textEdges = 200

// WriteText writes r as terminal tables: per machine its settings, its
// classes, the edges that reach (read or attach), the findings with the
// story of the first ones, and the what-if diffs.
func WriteText(w io.Writer, r *Report) error {
	for i, m := range r.Machines {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeMachine(w, m)
	}
	if g := r.Merged; g != nil {
		fmt.Fprintf(w, "\nFleet: %d machines, %d processes, %d principal and %d target classes (merged by key)\n",
			g.Machines, g.Processes, len(g.Principals), len(g.Targets))
		writeCounts(w, g.Counts)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tKIND\tPRINCIPAL\tTARGET\tACCESS\tMACHINES")
		for i, f := range g.Findings {
			if i == 30 {
				fmt.Fprintf(tw, "…\t%d more\t\t\t\t\n", len(g.Findings)-i)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", f.Severity, f.Kind, f.PrincipalLabel, f.TargetLabel, f.Access, len(f.Machines))
		}
		tw.Flush()
	}
	return nil
}

func writeMachine(w io.Writer, m *Machine) {
	yama := "off"
	if m.Settings.Yama >= 0 {
		yama = fmt.Sprint(m.Settings.Yama)
	}
	fmt.Fprintf(w, "Machine %s (%s): kernel %s, modules %s; yama %s, suid_dumpable %d, hidepid %s\n",
		m.Name, m.Source, m.Kernel, strings.Join(m.LSMs, ","), yama, m.Settings.SuidDumpable, m.Settings.HidePID)
	if len(m.Unmodelled) > 0 {
		fmt.Fprintf(w, "Active but not modelled (their policy is not read): %s\n", strings.Join(m.Unmodelled, ", "))
	}
	if m.Policy != "" {
		fmt.Fprintf(w, "Broker policy: %s\n", m.Policy)
	}
	fmt.Fprintf(w, "%d processes: %d principal classes, %d target classes, %d edges\n\n", m.Processes, len(m.Principals), len(m.Targets), len(m.Edges))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tPROCS\tCREDENTIALS\tEXAMPLES")
	for _, c := range m.Principals {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.ID, len(c.Members), c.Label, examples(c))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tPROCS\tCREDENTIALS\tEXAMPLES")
	for _, c := range m.Targets {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.ID, len(c.Members), c.Label, examples(c))
	}
	tw.Flush()
	fmt.Fprintln(w)

	// Administrators reach everything: one line each, not one per edge.
	var admins []string
	for _, c := range m.Principals {
		if admin(c) {
			admins = append(admins, c.ID)
		}
	}
	if len(admins) > 0 {
		fmt.Fprintf(w, "Administrators (root with CAP_SYS_PTRACE): %s; their edges are in the JSON and HTML outputs.\n", strings.Join(admins, ", "))
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tTARGET\tRELATION\tPAIRS\tVISIBLE\tREAD\tATTACH\tGRANTS\tLAYER (attach)")
	n := 0
	for _, e := range m.Edges {
		if admin(e.p) || !e.Reaches() && len(e.Grants) == 0 {
			continue
		}
		if n++; n > textEdges {
			continue
		}
		rel := string(e.Relation)
		if rel == "" {
			rel = "-"
		}
		grants := "-"
		if len(e.Grants) > 0 {
			grants = strings.Join(e.Grants, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Principal, e.Target, rel, e.Pairs,
			yes(e, Visible), pair(e, ReadFS, ReadReal), pair(e, AttachFS, AttachReal), grants, e.Answers[AttachReal].Layer)
	}
	tw.Flush()
	if n > textEdges {
		fmt.Fprintf(w, "… %d more edges that reach (see -o json)\n", n-textEdges)
	}
	if n == 0 {
		fmt.Fprintln(w, "No principal other than an administrator reaches another process.")
	}
	fmt.Fprintln(w)
	writeCounts(w, m.Count())

	fmt.Fprintf(w, "\nFindings: %d\n", len(m.Findings))
	for i, f := range m.Findings {
		if i == 20 {
			fmt.Fprintf(w, "… %d more (see -o json or -o html)\n", len(m.Findings)-i)
			break
		}
		fmt.Fprintf(w, "%3d. [%s] %s: %s (%s, %d pairs)\n", f.Rank, f.Severity, f.Kind, f.Title, f.Access, f.Pairs)
		if i < 3 {
			fmt.Fprintf(w, "     e.g. pid %d -> pid %d: %s\n", f.Example[0], f.Example[1], f.Answer)
			for j, s := range f.Story {
				fmt.Fprintf(w, "     %2d. %-12s %-5s %s\n", j+1, s.Layer, s.Outcome, s.Reason)
			}
			for _, u := range f.Unknown {
				fmt.Fprintf(w, "     depends on unknown: %s\n", u)
			}
		}
	}
	for _, d := range m.WhatIf {
		fmt.Fprintf(w, "\nWhat if %s: %d edge(s) lose an access, %d gain one\n", d.Change, len(d.Removed), len(d.Added))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\tPRINCIPAL\tTARGET\tRELATION\tACCESS\tPAIRS\tNOW DECIDED BY")
		for _, list := range []struct {
			sign  string
			edges []DiffEdge
		}{{"-", d.Removed}, {"+", d.Added}, {"-grant", d.GrantsRemoved}, {"+grant", d.GrantsAdded}} {
			for _, x := range list.edges {
				rel := string(x.Relation)
				if rel == "" {
					rel = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", list.sign, x.Principal, x.Target, rel, x.Access, x.Pairs, x.Layer)
			}
		}
		tw.Flush()
		for _, p := range d.ByPrincipal {
			fmt.Fprintf(w, "  %s (%s): -%d +%d pairs\n", p.Principal, p.Label, p.Removed, p.Added)
		}
	}
}

func writeCounts(w io.Writer, c Counts) {
	var parts []string
	for a := range NumAccess {
		parts = append(parts, fmt.Sprintf("%s %d", a, c.Pairs[a.String()]))
	}
	fmt.Fprintf(w, "Pairs allowed: %s\n", strings.Join(parts, ", "))
	parts = parts[:0]
	kinds := make([]string, 0, len(c.Findings))
	for k := range c.Findings {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		sum := 0
		for _, v := range c.Findings[k] {
			sum += v
		}
		if sum > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, sum))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "Findings by kind: %s\n", strings.Join(parts, ", "))
	}
}

func examples(c *Class) string {
	if c.Login != "" && len(c.Members) == 0 {
		return "(login user without a process)"
	}
	var names []string
	seen := map[string]bool{}
	for _, m := range c.Members {
		if !seen[m.Comm] {
			seen[m.Comm] = true
			names = append(names, fmt.Sprintf("%s[%d]", m.Comm, m.PID))
		}
		if len(names) == 3 {
			break
		}
	}
	s := strings.Join(names, " ")
	if len(c.Members) > len(names) {
		s += " …"
	}
	return s
}

func yes(e *Edge, a Access) string {
	if e.Answers[a].Allowed {
		if len(e.Answers[a].Unknown) > 0 {
			return "yes?"
		}
		return "yes"
	}
	return "no"
}

// pair shows two modes' answers: "yes", "no", or "fs"/"real" when only
// one of them allows.
func pair(e *Edge, fs, real Access) string {
	a, b := e.Answers[fs].Allowed, e.Answers[real].Allowed
	q := ""
	if len(e.Answers[fs].Unknown) > 0 || len(e.Answers[real].Unknown) > 0 {
		q = "?"
	}
	switch {
	case a && b:
		return "yes" + q
	case a:
		return "fscreds" + q
	case b:
		return "realcreds" + q
	}
	return "no" + q
}
