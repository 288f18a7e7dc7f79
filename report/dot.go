package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteDOT writes r as a Graphviz graph: principal classes as boxes,
// target classes as ellipses, and an edge for each class pair with
// read (blue) or attach (red) allowed; a dashed edge stands for related
// pairs only. A fleet gets one cluster per machine.
func WriteDOT(w io.Writer, r *Report) error {
	fmt.Fprintln(w, "digraph procgate_report {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [fontname="sans-serif", fontsize=10];`)
	fmt.Fprintln(w, `  edge [fontname="sans-serif", fontsize=9];`)
	for i, m := range r.Machines {
		prefix := ""
		indent := "  "
		if len(r.Machines) > 1 {
			prefix = fmt.Sprintf("m%d_", i+1)
			fmt.Fprintf(w, "  subgraph cluster_%d {\n    label=%s;\n", i+1, strconv.Quote(m.Name))
			indent = "    "
		}
		for _, c := range m.Principals {
			fmt.Fprintf(w, "%s%s%s [shape=box, label=%s];\n", indent, prefix, c.ID, dotLabel(c))
		}
		for _, c := range m.Targets {
			style := ""
			if c.Privileged {
				style = `, style=filled, fillcolor="#fde2e2"`
			}
			fmt.Fprintf(w, "%s%s%s [shape=ellipse, label=%s%s];\n", indent, prefix, c.ID, dotLabel(c), style)
		}
		for _, e := range m.Edges {
			attach := e.Allowed(AttachReal) || e.Allowed(AttachFS)
			read := e.Allowed(ReadFS) || e.Allowed(ReadReal)
			if !attach && !read {
				continue
			}
			color, label := "blue", "read"
			if attach {
				color, label = "red", "attach"
			}
			style := ""
			if e.Relation != Unrelated {
				style = ", style=dashed"
				label += " (" + string(e.Relation) + ")"
			}
			fmt.Fprintf(w, "%s%s%s -> %s%s [color=%s, label=%s%s];\n", indent, prefix, e.Principal, prefix, e.Target, color,
				strconv.Quote(fmt.Sprintf("%s ×%d", label, e.Pairs)), style)
		}
		if len(r.Machines) > 1 {
			fmt.Fprintln(w, "  }")
		}
	}
	_, err := fmt.Fprintln(w, "}")
	return err
}

func dotLabel(c *Class) string {
	s := c.ID + ": " + c.Label
	if ex := examples(c); ex != "" {
		s += "\n" + ex
	}
	return strconv.Quote(strings.ReplaceAll(s, `"`, `'`))
}
