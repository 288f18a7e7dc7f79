package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteOpenMetrics writes r's counts in the text format node_exporter's
// textfile collector reads (a file ending in .prom): per machine the
// process pairs and class edges with each access allowed, per principal
// class the pairs it reaches, and the findings by kind and severity. All
// are gauges; the file ends with "# EOF".
func WriteOpenMetrics(w io.Writer, r *Report) error {
	type sample struct {
		labels string
		v      int
	}
	families := []struct {
		name, help string
		samples    []sample
	}{
		{name: "procgate_report_processes", help: "Processes in the report."},
		{name: "procgate_report_classes", help: "Principal and target classes."},
		{name: "procgate_report_pairs", help: "Process pairs with the access allowed."},
		{name: "procgate_report_edges", help: "Class edges with the access allowed."},
		{name: "procgate_report_principal_pairs", help: "Process pairs a principal class reaches, by access."},
		{name: "procgate_report_findings", help: "Findings by kind and severity."},
	}
	for _, m := range r.Machines {
		mach := "machine=" + quoteLabel(m.Name)
		families[0].samples = append(families[0].samples, sample{mach, m.Processes})
		families[1].samples = append(families[1].samples,
			sample{mach + `,kind="principal"`, len(m.Principals)}, sample{mach + `,kind="target"`, len(m.Targets)})
		c := m.Count()
		for a := range NumAccess {
			l := mach + ",access=" + quoteLabel(a.String())
			families[2].samples = append(families[2].samples, sample{l, c.Pairs[a.String()]})
			families[3].samples = append(families[3].samples, sample{l, c.Edges[a.String()]})
		}
		per := map[*Class]*[NumAccess]int{}
		for _, e := range m.Edges {
			x := per[e.p]
			if x == nil {
				x = &[NumAccess]int{}
				per[e.p] = x
			}
			for a := range NumAccess {
				if e.Answers[a].Allowed {
					x[a] += e.Pairs
				}
			}
		}
		for _, p := range m.Principals {
			x := per[p]
			if x == nil {
				x = &[NumAccess]int{}
			}
			for a := ReadFS; a < NumAccess; a++ {
				l := fmt.Sprintf("%s,principal=%s,label=%s,access=%s", mach, quoteLabel(p.ID), quoteLabel(p.Label), quoteLabel(a.String()))
				families[4].samples = append(families[4].samples, sample{l, x[a]})
			}
		}
		kinds := slices.Clone(Kinds)
		for _, k := range kinds {
			for _, s := range []Severity{High, Medium, Low} {
				l := fmt.Sprintf("%s,kind=%s,severity=%s", mach, quoteLabel(k), quoteLabel(string(s)))
				families[5].samples = append(families[5].samples, sample{l, c.Findings[k][s]})
			}
		}
	}
	var b strings.Builder
	for _, f := range families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", f.name, f.help, f.name)
		for _, s := range f.samples {
			fmt.Fprintf(&b, "%s{%s} %d\n", f.name, s.labels, s.v)
		}
	}
	b.WriteString("# EOF\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// quoteLabel quotes a label value as the exposition format escapes it:
// backslash, double quote and newline.
func quoteLabel(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
