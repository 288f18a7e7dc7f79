package gate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/procgate/procgate/policy"
)

// TestMetricsByRule: procgate_rule_decisions_total counts each policy
// decision under the rule that made it, and keeps counting across a
// reload that keeps the rule.
func TestMetricsByRule(t *testing.T) {
	const src = `subject everyone { }
target any_process { }
allow everyone any_process : read { status io };
allow everyone any_process : read { status limits };
deny everyone any_process : attach;
`
	g, c := selfGate(t, loadPolicy(t, src))
	read := func() {
		t.Helper()
		req := &Request{PIDs: []int{os.Getpid()}, Items: []Item{policy.ItemStatus, policy.ItemIO, policy.ItemSyscall}}
		err := g.Read(context.Background(), c, req)(func(r *ProcResult) error {
			if r.Denial != nil {
				return fmt.Errorf("pid %d: %v", r.PID, r.Denial)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	metric := func() string {
		var b bytes.Buffer
		g.Metrics().WriteTo(&b)
		return b.String()
	}
	want := func(line string) {
		t.Helper()
		if m := metric(); !strings.Contains(m, line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, grepLines(m, "rule_decisions"))
		}
	}
	read()
	read()
	want(`procgate_rule_decisions_total{rule="allow@t.pol:3",result="allow"} 4`) // status and io, twice: the first granting rule
	want(`procgate_rule_decisions_total{rule="deny@t.pol:5",result="deny"} 2`)   // syscall needs attach
	if strings.Contains(metric(), `rule="allow@t.pol:4"`) {
		t.Error("the second allow rule is counted, though the first one decides")
	}
	want(`procgate_decisions_total{result="allow",source="policy",item="status"} 2`)
	// A reload that keeps the rules keeps their counters.
	g.SetPolicy(loadPolicy(t, src))
	read()
	want(`procgate_rule_decisions_total{rule="allow@t.pol:3",result="allow"} 6`)
	want(`procgate_rule_decisions_total{rule="deny@t.pol:5",result="deny"} 3`)
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
