package gate

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procgate/procgate/policy"
)

// Metrics are the gate's and the broker's counters, exported in the
// Prometheus text format by WriteTo. All methods are safe for concurrent
// use and do not allocate.
type Metrics struct {
	decisions []atomic.Uint64 // [allowed 0/1][source][item]
	// DenialsAudited and DenialsDontaudited count denials whose record was
	// written (or rate-limited) and those a dontaudit rule hid.
	denialsAudited, denialsHidden atomic.Uint64
	// Requests and their latency.
	latency *Histogram
	// Item read latency for files read under a deadline.
	readTimeouts atomic.Uint64
	// Lock-taking reads refused before they started, by refusal.
	readRefusals [numRefusals]atomic.Uint64

	mu       sync.Mutex
	counters map[string]*atomic.Uint64
	gauges   map[string]func() float64

	// Decisions by policy rule. Counters live in byRule, by the rule's
	// name (effect@file:line), so that they survive a reload; a ruleTable
	// maps one policy generation's rule ids to them.
	rules    atomic.Pointer[ruleTable]
	ruleMu   sync.Mutex
	byRule   map[string]*[2]atomic.Uint64 // [deny, allow]
	ruleGens map[uint64]*ruleTable        // tables of other generations
}

// ruleTable maps one policy generation's rule ids to their counters.
type ruleTable struct {
	gen uint64
	ctr []*[2]atomic.Uint64
}

// ruleNamer is implemented by policies that can name their rules
// (*policy.Policy).
type ruleNamer interface {
	NumRules() int
	Rule(id policy.RuleID) (policy.RuleRef, bool)
}

// ruleDecision counts a decision that rule id of pol made.
func (m *Metrics) ruleDecision(pol Policy, id policy.RuleID, allowed bool) {
	if m == nil || id < 0 {
		return
	}
	rt := m.rules.Load()
	if rt == nil || rt.gen != pol.Generation() {
		rt = m.ruleTableFor(pol)
	}
	if int(id) < len(rt.ctr) {
		a := 0
		if allowed {
			a = 1
		}
		rt.ctr[id][a].Add(1)
	}
}

// ruleTableFor returns (building it when needed) the table of pol's
// generation; the newest generation's table becomes the fast path's.
func (m *Metrics) ruleTableFor(pol Policy) *ruleTable {
	gen := pol.Generation()
	m.ruleMu.Lock()
	defer m.ruleMu.Unlock()
	if rt := m.rules.Load(); rt != nil && rt.gen == gen {
		return rt
	}
	rt := m.ruleGens[gen]
	if rt == nil {
		rt = &ruleTable{gen: gen}
		if rn, ok := pol.(ruleNamer); ok {
			rt.ctr = make([]*[2]atomic.Uint64, rn.NumRules())
			for i := range rt.ctr {
				ref, _ := rn.Rule(policy.RuleID(i))
				name := ref.String()
				c := m.byRule[name]
				if c == nil {
					c = new([2]atomic.Uint64)
					m.byRule[name] = c
				}
				rt.ctr[i] = c
			}
		}
		m.ruleGens[gen] = rt
	}
	if cur := m.rules.Load(); cur == nil || gen > cur.gen {
		m.rules.Store(rt)
	}
	// Keep the tables of the last few generations only: a straggler of an
	// older one rebuilds its table, and counts land in the same counters.
	for len(m.ruleGens) > 4 {
		oldest := gen
		for g := range m.ruleGens {
			oldest = min(oldest, g)
		}
		delete(m.ruleGens, oldest)
	}
	return rt
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		decisions: make([]atomic.Uint64, 2*int(numSources)*numItems),
		latency:   NewHistogram([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
		counters:  map[string]*atomic.Uint64{},
		gauges:    map[string]func() float64{},
		byRule:    map[string]*[2]atomic.Uint64{},
		ruleGens:  map[uint64]*ruleTable{},
	}
}

func (m *Metrics) decision(allowed bool, source Source, it Item) {
	if m == nil {
		return
	}
	a := 0
	if allowed {
		a = 1
	}
	m.decisions[(a*int(numSources)+int(source))*numItems+int(it)].Add(1)
}

// Counter returns the named counter (full metric name with labels, for
// example `procgate_rejected_total{reason="limit"}`), creating it.
func (m *Metrics) Counter(name string) *atomic.Uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[name]
	if !ok {
		c = new(atomic.Uint64)
		m.counters[name] = c
	}
	return c
}

// Gauge registers a gauge read at export time.
func (m *Metrics) Gauge(name string, f func() float64) {
	m.mu.Lock()
	m.gauges[name] = f
	m.mu.Unlock()
}

// ObserveRequest records one request's latency.
func (m *Metrics) ObserveRequest(d time.Duration) {
	if m != nil {
		m.latency.Observe(d.Seconds())
	}
}

// Latency returns the request latency histogram.
func (m *Metrics) Latency() *Histogram { return m.latency }

// Decisions returns the number of item decisions made with the given
// outcome.
func (m *Metrics) Decisions(allowed bool) uint64 {
	a := 0
	if allowed {
		a = 1
	}
	var n uint64
	for s := range numSources {
		for i := range numItems {
			n += m.decisions[(a*int(numSources)+int(s))*numItems+i].Load()
		}
	}
	return n
}

// WriteTo writes every metric in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	fmt.Fprintln(cw, "# HELP procgate_decisions_total Item decisions by result, deciding source and item.")
	fmt.Fprintln(cw, "# TYPE procgate_decisions_total counter")
	for a, res := range []string{"deny", "allow"} {
		for s := range numSources {
			for i := range numItems {
				if v := m.decisions[(a*int(numSources)+int(s))*numItems+i].Load(); v > 0 {
					fmt.Fprintf(cw, "procgate_decisions_total{result=%q,source=%q,item=%q} %d\n", res, s, Item(i).String(), v)
				}
			}
		}
	}
	fmt.Fprintln(cw, "# HELP procgate_rule_decisions_total Item decisions a policy rule made (the first granting allow rule, or the first refusing deny or protect rule), by rule and result.")
	fmt.Fprintln(cw, "# TYPE procgate_rule_decisions_total counter")
	m.ruleMu.Lock()
	rnames := make([]string, 0, len(m.byRule))
	for n := range m.byRule {
		rnames = append(rnames, n)
	}
	sort.Strings(rnames)
	rctrs := make([]*[2]atomic.Uint64, len(rnames))
	for i, n := range rnames {
		rctrs[i] = m.byRule[n]
	}
	m.ruleMu.Unlock()
	for i, n := range rnames {
		for a, res := range []string{"deny", "allow"} {
			if v := rctrs[i][a].Load(); v > 0 {
				fmt.Fprintf(cw, "procgate_rule_decisions_total{rule=%q,result=%q} %d\n", n, res, v)
			}
		}
	}
	fmt.Fprintln(cw, "# HELP procgate_denials_total Denials, by whether a dontaudit rule hid their audit record.")
	fmt.Fprintln(cw, "# TYPE procgate_denials_total counter")
	fmt.Fprintf(cw, "procgate_denials_total{dontaudited=\"false\"} %d\n", m.denialsAudited.Load())
	fmt.Fprintf(cw, "procgate_denials_total{dontaudited=\"true\"} %d\n", m.denialsHidden.Load())
	fmt.Fprintln(cw, "# HELP procgate_read_timeouts_total Reads of mmap-lock files that missed their deadline.")
	fmt.Fprintln(cw, "# TYPE procgate_read_timeouts_total counter")
	fmt.Fprintf(cw, "procgate_read_timeouts_total %d\n", m.readTimeouts.Load())
	fmt.Fprintln(cw, "# HELP procgate_read_refusals_total Lock-taking reads answered at once, without a read, by reason: breaker (the target timed out lately: ETIMEDOUT), target, uid, global (reads in flight at their bound: EBUSY).")
	fmt.Fprintln(cw, "# TYPE procgate_read_refusals_total counter")
	for r := range numRefusals {
		fmt.Fprintf(cw, "procgate_read_refusals_total{reason=%q} %d\n", r, m.readRefusals[r].Load())
	}
	m.latency.write(cw, "procgate_request_duration_seconds", "Request latency, from the decoded request to the last byte written.")
	m.mu.Lock()
	names := make([]string, 0, len(m.counters))
	for n := range m.counters {
		names = append(names, n)
	}
	gnames := make([]string, 0, len(m.gauges))
	for n := range m.gauges {
		gnames = append(gnames, n)
	}
	m.mu.Unlock()
	sort.Strings(names)
	sort.Strings(gnames)
	for _, n := range names {
		fmt.Fprintf(cw, "%s %d\n", n, m.Counter(n).Load())
	}
	for _, n := range gnames {
		m.mu.Lock()
		f := m.gauges[n]
		m.mu.Unlock()
		fmt.Fprintf(cw, "%s %g\n", n, f())
	}
	return cw.n, cw.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Histogram is a fixed-bucket histogram of seconds.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, plus +Inf
	sum    atomic.Uint64   // float64 bits, updated by CAS
	n      atomic.Uint64
}

// NewHistogram returns a histogram with the given upper bounds.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Quantile estimates the q-quantile (0..1) from the buckets: the upper
// bound of the bucket holding it.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		if acc >= want {
			if i < len(h.bounds) {
				return h.bounds[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

func (h *Histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var acc uint64
	for i, b := range h.bounds {
		acc += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, acc)
	}
	acc += h.counts[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, acc)
	fmt.Fprintf(w, "%s_sum %g\n%s_count %d\n", name, math.Float64frombits(h.sum.Load()), name, h.n.Load())
}
