package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// denialAuditor writes the BPF program's denials to the audit log, in
// the broker's record format with the writer bpf (docs/api.md, "Audit
// log and metrics"): one record per denial, rate-limited as the
// broker's are, naming the policy rule that refused.
type denialAuditor struct {
	aud *gate.Auditor

	mu   sync.Mutex
	sets map[uint64]*bpf.Layout // the last rule sets this process loaded, by generation
	gens []uint64               // their generations, oldest first

	read    atomic.Uint64 // denials read from the ring buffer
	reloads [2]atomic.Uint64
}

func newDenialAuditor(aud *gate.Auditor) *denialAuditor {
	return &denialAuditor{aud: aud, sets: map[uint64]*bpf.Layout{}}
}

// keptRuleSets is how many of the last rule sets name the rules of the
// denials still in the ring buffer: it is read as the denials come, so
// those of older ones are long gone.
const keptRuleSets = 4

// loaded records a rule set the program enforces from now on, laid out
// once for every record that names one of its rules.
func (d *denialAuditor) loaded(rs *bpf.RuleSet) {
	l := rs.Layout()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.sets[rs.Generation]; !ok {
		d.gens = append(d.gens, rs.Generation)
	}
	d.sets[rs.Generation] = l
	for len(d.gens) > keptRuleSets {
		delete(d.sets, d.gens[0])
		d.gens = d.gens[1:]
	}
}

// event turns one denial into the audited decision it records.
func (d *denialAuditor) event(dn bpflsm.Denial, now time.Time) gate.AuditEvent {
	ev := gate.AuditEvent{
		Time: now, Class: audit.Read,
		PID: dn.TGID, Comm: dn.Comm, UID: dn.UID,
		TPID: dn.TTGID, TComm: dn.TComm, TUID: dn.TUID,
		Generation: dn.Generation,
	}
	if dn.Access == bpf.Attach {
		ev.Class = audit.Attach
	}
	hook := "ptrace_access_check"
	if dn.Traceme {
		hook = "ptrace_traceme"
	}
	d.mu.Lock()
	l := d.sets[dn.Generation]
	d.mu.Unlock()
	var r *bpf.Rule
	if l != nil {
		r = l.DecideClasses(dn.Rule, dn.SubjectClasses, dn.TargetClasses, dn.Access)
	}
	if r == nil {
		ev.Reason = fmt.Sprintf("procgate's BPF program refused %s access at %s (rule set generation %d, not loaded by this process)", dn.Access, hook, dn.Generation)
		return ev
	}
	ev.Rule = r.Ref
	ev.Reason = fmt.Sprintf("procgate's BPF program refused %s access at %s: %s (EPERM)", dn.Access, hook, r.Text)
	return ev
}

// run audits the denials rd reads until it is closed.
func (d *denialAuditor) run(rd *bpflsm.Denials, errOut io.Writer) {
	for {
		dn, err := rd.Read()
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			fmt.Fprintln(errOut, "procgate: enforce:", err)
			continue
		}
		d.read.Add(1)
		ev := d.event(dn, time.Now())
		d.aud.Record(&ev)
	}
}

// writeMetrics writes enforce's metrics in the Prometheus text format:
// the program's counters (read from its pinned map at each scrape), the
// reloads, and the audit log's counts.
func (d *denialAuditor) writeMetrics(w io.Writer, pinDir string) error {
	st, err := bpflsm.Stat(pinDir)
	if err != nil {
		return err
	}
	for _, m := range []struct {
		name, help string
		v          uint64
	}{
		{"procgate_bpf_decisions_total", "Questions procgate's BPF program answered (its ptrace hooks' calls with a rule set).", st.Decisions},
		{"procgate_bpf_denials_total", "Questions procgate's BPF program refused.", st.Denials},
		{"procgate_bpf_unset_total", "Hook calls that found no rule set.", st.Unset},
		{"procgate_bpf_denials_unreported_total", "Denials the program's ring buffer had no room to report (audited by count only).", st.Lost},
		{"procgate_bpf_denials_read_total", "Denials read from the ring buffer by this process.", d.read.Load()},
		{"procgate_bpf_failed_closed_total", "Denials without a rule's decision: a preempted decision's scratch taken, the hashed rules' slot empty (not reported), or cgroup selectors the kernel cannot serve.", st.Preempted + st.Unslotted + st.CgroupUnserved},
	} {
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "# HELP procgate_bpf_rule_set_generation The generation of the rule set the program enforces.\n# TYPE procgate_bpf_rule_set_generation gauge\nprocgate_bpf_rule_set_generation %d\n", st.Generation)
	fmt.Fprintf(w, "# HELP procgate_bpf_reloads_total Rule-set reloads (SIGHUP), by result.\n# TYPE procgate_bpf_reloads_total counter\n")
	fmt.Fprintf(w, "procgate_bpf_reloads_total{result=\"ok\"} %d\nprocgate_bpf_reloads_total{result=\"error\"} %d\n", d.reloads[0].Load(), d.reloads[1].Load())
	return gate.WriteAuditMetrics(w, d.aud)
}
