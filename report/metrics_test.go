package report_test

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/report"
)

// omSample is one sample of an exposition: its family, labels and value.
type omSample struct {
	name   string
	labels map[string]string
	value  float64
}

// omFamily is one metric family: its HELP and TYPE and samples.
type omFamily struct {
	name, help, typ string
	labelNames      []string // of its first sample, sorted
	samples         []omSample
}

var (
	omMetricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	omLabelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition parses the text format node_exporter's textfile
// collector reads, strictly: github.com/prometheus/common/expfmt (the
// collector's parser) is not a dependency of this module, so this
// checker holds the output to the rules of that parser and of the
// registry the collector feeds, and to OpenMetrics where they are
// stricter. Every line ends in a newline and is a "# HELP name text",
// a "# TYPE name gauge|counter|…", a sample `name{l="v",…} value`, or
// the final "# EOF"; no blank lines or other comments; HELP and TYPE
// at most once per family and before its samples; a family's lines
// contiguous; valid metric and label names, no label name starting with
// "__", none twice in a sample; label values valid UTF-8 with only \\,
// \" and \n escaped; the same label names for every sample of a family;
// no series twice; no timestamps (the textfile collector rejects files
// with them).
func parseExposition(text string) ([]*omFamily, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("the exposition does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) == 0 || lines[len(lines)-1] != "# EOF" {
		return nil, fmt.Errorf("the last line is not # EOF")
	}
	lines = lines[:len(lines)-1]
	var fams []*omFamily
	byName := map[string]*omFamily{}
	series := map[string]bool{}
	family := func(name string, n int) (*omFamily, error) {
		f := byName[name]
		if f == nil {
			f = &omFamily{name: name}
			byName[name] = f
			fams = append(fams, f)
			return f, nil
		}
		if fams[len(fams)-1] != f {
			return nil, fmt.Errorf("line %d: family %s resumes after another family", n, name)
		}
		return f, nil
	}
	for i, line := range lines {
		n := i + 1
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("line %d: not UTF-8", n)
		}
		if strings.HasPrefix(line, "#") {
			parts := strings.SplitN(line, " ", 4)
			if len(parts) < 3 || parts[0] != "#" || (parts[1] != "HELP" && parts[1] != "TYPE") {
				return nil, fmt.Errorf("line %d: %q is neither HELP nor TYPE (# EOF is the last line only)", n, line)
			}
			name := parts[2]
			if !omMetricName.MatchString(name) {
				return nil, fmt.Errorf("line %d: bad metric name %q", n, name)
			}
			f, err := family(name, n)
			if err != nil {
				return nil, err
			}
			if len(f.samples) > 0 {
				return nil, fmt.Errorf("line %d: %s of %s after its samples", n, parts[1], name)
			}
			rest := ""
			if len(parts) == 4 {
				rest = parts[3]
			}
			switch parts[1] {
			case "HELP":
				if f.help != "" {
					return nil, fmt.Errorf("line %d: second HELP for %s", n, name)
				}
				if rest == "" {
					return nil, fmt.Errorf("line %d: empty HELP for %s", n, name)
				}
				for j := 0; j < len(rest); j++ {
					if rest[j] == '\\' {
						if j+1 == len(rest) || (rest[j+1] != '\\' && rest[j+1] != 'n') {
							return nil, fmt.Errorf("line %d: bad escape in HELP of %s", n, name)
						}
						j++
					}
				}
				f.help = rest
			case "TYPE":
				if f.typ != "" {
					return nil, fmt.Errorf("line %d: second TYPE for %s", n, name)
				}
				switch rest {
				case "gauge", "counter", "untyped", "summary", "histogram":
				default:
					return nil, fmt.Errorf("line %d: bad TYPE %q for %s", n, rest, name)
				}
				f.typ = rest
			}
			continue
		}
		s, key, err := omParseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		f, err := family(s.name, n)
		if err != nil {
			return nil, err
		}
		if f.typ == "" {
			return nil, fmt.Errorf("line %d: sample of %s before its TYPE", n, s.name)
		}
		names := slices.Sorted(maps.Keys(s.labels))
		if f.samples == nil {
			f.labelNames = names
		} else if !slices.Equal(f.labelNames, names) {
			return nil, fmt.Errorf("line %d: labels %v, but the family's first sample has %v", n, names, f.labelNames)
		}
		if series[key] {
			return nil, fmt.Errorf("line %d: series %s twice", n, key)
		}
		series[key] = true
		f.samples = append(f.samples, s)
	}
	return fams, nil
}

// omParseSample parses `name{label="value",…} value` and returns it and a
// key naming its series (labels sorted).
func omParseSample(line string) (omSample, string, error) {
	s := omSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, "", fmt.Errorf("no value in %q", line)
	}
	s.name = line[:i]
	if !omMetricName.MatchString(s.name) {
		return s, "", fmt.Errorf("bad metric name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for len(rest) > 0 && rest[0] != '}' {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return s, "", fmt.Errorf("label without value in %q", line)
			}
			ln := rest[:eq]
			if !omLabelName.MatchString(ln) || strings.HasPrefix(ln, "__") {
				return s, "", fmt.Errorf("bad label name %q", ln)
			}
			if _, dup := s.labels[ln]; dup {
				return s, "", fmt.Errorf("label %s twice", ln)
			}
			rest = rest[eq+1:]
			if rest == "" || rest[0] != '"' {
				return s, "", fmt.Errorf("label %s: value not quoted", ln)
			}
			var v strings.Builder
			j := 1
			for ; j < len(rest) && rest[j] != '"'; j++ {
				c := rest[j]
				if c == '\\' {
					j++
					if j == len(rest) {
						return s, "", fmt.Errorf("label %s: unterminated escape", ln)
					}
					switch rest[j] {
					case '\\':
						v.WriteByte('\\')
					case '"':
						v.WriteByte('"')
					case 'n':
						v.WriteByte('\n')
					default:
						return s, "", fmt.Errorf("label %s: bad escape \\%c", ln, rest[j])
					}
					continue
				}
				v.WriteByte(c)
			}
			if j == len(rest) {
				return s, "", fmt.Errorf("label %s: unterminated value", ln)
			}
			s.labels[ln] = v.String()
			rest = rest[j+1:]
			switch {
			case strings.HasPrefix(rest, ","):
				rest = rest[1:]
				if strings.HasPrefix(rest, "}") {
					return s, "", fmt.Errorf("trailing comma in %q", line)
				}
			case strings.HasPrefix(rest, "}"):
			default:
				return s, "", fmt.Errorf("after label %s: %q", ln, rest)
			}
		}
		if rest == "" {
			return s, "", fmt.Errorf("unterminated labels in %q", line)
		}
		rest = rest[1:]
	}
	if !strings.HasPrefix(rest, " ") {
		return s, "", fmt.Errorf("no space before the value in %q", line)
	}
	fields := strings.Split(rest[1:], " ")
	if len(fields) != 1 {
		return s, "", fmt.Errorf("%q: want one value and no timestamp (the textfile collector rejects timestamps)", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || strings.ContainsAny(fields[0], "_xXpP") {
		return s, "", fmt.Errorf("bad value %q", fields[0])
	}
	s.value = v
	names := slices.Sorted(maps.Keys(s.labels))
	var key strings.Builder
	key.WriteString(s.name)
	for _, n := range names {
		fmt.Fprintf(&key, " %s=%q", n, s.labels[n])
	}
	return s, key.String(), nil
}

// TestParseExpositionRejects holds the checker to the rules it claims.
func TestParseExpositionRejects(t *testing.T) {
	const head = "# HELP a_b A.\n# TYPE a_b gauge\n"
	good := head + `a_b{x="1",y="q\"\\\n"} 2` + "\n# EOF\n"
	if _, err := parseExposition(good); err != nil {
		t.Fatalf("good exposition rejected: %v", err)
	}
	for name, text := range map[string]string{
		"no EOF":               head + "a_b 1\n",
		"no final newline":     head + "a_b 1\n# EOF",
		"blank line":           head + "\na_b 1\n# EOF\n",
		"other comment":        head + "# hello\na_b 1\n# EOF\n",
		"sample before TYPE":   "a_b 1\n# TYPE a_b gauge\n# EOF\n",
		"second TYPE":          head + "# TYPE a_b gauge\na_b 1\n# EOF\n",
		"bad TYPE":             "# TYPE a_b gauges\na_b 1\n# EOF\n",
		"resumed family":       head + "a_b 1\n# TYPE c gauge\nc 1\na_b{x=\"2\"} 1\n# EOF\n",
		"duplicate series":     head + "a_b{x=\"1\"} 1\na_b{x=\"1\"} 2\n# EOF\n",
		"inconsistent labels":  head + "a_b{x=\"1\"} 1\na_b{y=\"1\"} 2\n# EOF\n",
		"bad escape":           head + "a_b{x=\"\\t\"} 1\n# EOF\n",
		"unquoted value":       head + "a_b{x=1} 1\n# EOF\n",
		"trailing comma":       head + "a_b{x=\"1\",} 1\n# EOF\n",
		"reserved label":       head + "a_b{__x=\"1\"} 1\n# EOF\n",
		"duplicate label":      head + "a_b{x=\"1\",x=\"2\"} 1\n# EOF\n",
		"timestamp":            head + "a_b 1 1700000000000\n# EOF\n",
		"bad value":            head + "a_b one\n# EOF\n",
		"bad metric name":      "# TYPE 1a gauge\n1a 1\n# EOF\n",
		"raw newline in value": head + "a_b{x=\"1\n\"} 1\n# EOF\n",
	} {
		if _, err := parseExposition(text); err == nil {
			t.Errorf("%s: accepted:\n%s", name, text)
		}
	}
}

// TestOpenMetricsParsesAndCounts writes the OpenMetrics output of a
// fleet of synthetic machines (one with Yama at scope 0, so that every
// kind of kernel finding can occur, and a machine name that needs
// escaping), parses it with parseExposition, and checks every sample
// against the report: one per machine, class kind, access, principal
// and access, kind and severity, and nothing else.
func TestOpenMetricsParsesAndCounts(t *testing.T) {
	var machines []*report.Machine
	for i, name := range []string{`node "a" \ 1`, "node-b\nsecond line", "node-3"} {
		w := benchWorld(300, 20, i*3) // machine 3: Yama scope 0
		m, err := report.Build(report.Input{Name: name, Source: "snapshot", World: w, Live: &live.System{World: w}}, report.Options{})
		if err != nil {
			t.Fatal(err)
		}
		machines = append(machines, m)
	}
	r := report.New(machines, time.Unix(1e9, 0))
	var buf bytes.Buffer
	if err := report.WriteOpenMetrics(&buf, r); err != nil {
		t.Fatal(err)
	}
	fams, err := parseExposition(buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}

	// What the report says, by series key.
	want := map[string]float64{}
	put := func(name string, v int, kv ...string) {
		var key strings.Builder
		key.WriteString(name)
		labels := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			labels[kv[i]] = kv[i+1]
		}
		for _, n := range slices.Sorted(maps.Keys(labels)) {
			fmt.Fprintf(&key, " %s=%q", n, labels[n])
		}
		want[key.String()] = float64(v)
	}
	findings, pairs := 0, 0
	for _, m := range machines {
		put("procgate_report_processes", m.Processes, "machine", m.Name)
		put("procgate_report_classes", len(m.Principals), "machine", m.Name, "kind", "principal")
		put("procgate_report_classes", len(m.Targets), "machine", m.Name, "kind", "target")
		c := m.Count()
		for a := range report.NumAccess {
			put("procgate_report_pairs", c.Pairs[a.String()], "machine", m.Name, "access", a.String())
			put("procgate_report_edges", c.Edges[a.String()], "machine", m.Name, "access", a.String())
			pairs += c.Pairs[a.String()]
		}
		for _, p := range m.Principals {
			for a := report.ReadFS; a < report.NumAccess; a++ {
				n := 0
				for _, e := range m.Edges {
					if e.Principal == p.ID && e.Allowed(a) {
						n += e.Pairs
					}
				}
				put("procgate_report_principal_pairs", n, "machine", m.Name, "principal", p.ID, "label", p.Label, "access", a.String())
			}
		}
		for _, k := range report.Kinds {
			for _, s := range []report.Severity{report.High, report.Medium, report.Low} {
				n := 0
				for _, f := range m.Findings {
					if f.Kind == k && f.Severity == s {
						n++
					}
				}
				put("procgate_report_findings", n, "machine", m.Name, "kind", k, "severity", string(s))
				findings += n
			}
		}
	}
	if findings == 0 || pairs == 0 {
		t.Fatalf("the fleet has %d findings and %d allowed pairs: the test would check nothing", findings, pairs)
	}

	got := map[string]float64{}
	for _, f := range fams {
		if f.typ != "gauge" || f.help == "" {
			t.Errorf("family %s: TYPE %q, HELP %q: want a gauge with help", f.name, f.typ, f.help)
		}
		for _, s := range f.samples {
			if s.value != math.Trunc(s.value) || s.value < 0 {
				t.Errorf("%s %v: value %v is not a count", s.name, s.labels, s.value)
			}
			var key strings.Builder
			key.WriteString(s.name)
			for _, n := range slices.Sorted(maps.Keys(s.labels)) {
				fmt.Fprintf(&key, " %s=%q", n, s.labels[n])
			}
			got[key.String()] = s.value
		}
	}
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing series %s (want %v)", k, v)
		case g != v:
			t.Errorf("%s = %v, report says %v", k, g, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s = %v", k, v)
		}
	}
}
