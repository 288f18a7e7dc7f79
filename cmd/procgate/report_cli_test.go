package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCLI runs report on the examples in every format and on bad
// input: every error is exit status 2 with a message that names what is
// wrong; every format is well-formed.
func TestReportCLI(t *testing.T) {
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "bad.pol")
	if err := os.WriteFile(badPolicy, []byte("allow user:1000 * : read { environ\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"text", []string{"--scenario", "../../examples/gdb-yama.yaml"}, 0, []string{"Machine gdb-yama.yaml (scenario)", "PRINCIPAL", "descendant", "Pairs allowed:"}},
		{"what-if", []string{"--scenario", "../../examples/gdb-yama.yaml", "--what-if", "yama=0"}, 0, []string{"What if yama=0: 0 edge(s) lose an access, 4 gain one", "+  p1"}},
		{"dot", []string{"--scenario", "../../examples/gdb-yama.yaml", "-o", "dot"}, 0, []string{"digraph procgate_report {", "p1 -> t1 [color=red", "style=dashed"}},
		{"openmetrics", []string{"--scenario", "../../examples/setuid-program.yaml", "-o", "openmetrics"}, 0, []string{`procgate_report_processes{machine="setuid-program.yaml"}`, "# EOF"}},
		{"policy", []string{"--scenario", "../../examples/node-exporter-selinux.yaml", "--policy", "../../examples/policies/node-exporter.pol"}, 0, []string{"Broker policy: ../../examples/policies/node-exporter.pol"}},
		{"bad format", []string{"--scenario", "../../examples/gdb-yama.yaml", "-o", "xml"}, 2, []string{`-o "xml": want text, json, dot, html or openmetrics`}},
		{"bad what-if key", []string{"--scenario", "../../examples/gdb-yama.yaml", "--what-if", "selinux=0"}, 2, []string{`unknown key "selinux"`, "yama=0..3"}},
		{"bad yama", []string{"--scenario", "../../examples/gdb-yama.yaml", "--what-if", "yama=7"}, 2, []string{"what-if yama=7: want 0, 1, 2 or 3"}},
		{"bad drop-cap", []string{"--scenario", "../../examples/gdb-yama.yaml", "--what-if", "drop-cap=2100:sys_potato"}, 2, []string{"what-if drop-cap=2100:sys_potato"}},
		{"drop-cap of no process", []string{"--scenario", "../../examples/gdb-yama.yaml", "--what-if", "drop-cap=9:sys_ptrace"}, 2, []string{"no process 9 in the report"}},
		{"bad policy", []string{"--scenario", "../../examples/gdb-yama.yaml", "--policy", badPolicy}, 2, []string{"bad.pol:"}},
		{"both inputs", []string{"--scenario", "a.yaml", "--snapshot", "b.yaml"}, 2, []string{"not both"}},
		{"missing scenario", []string{"--scenario", filepath.Join(dir, "none.yaml")}, 2, []string{"none.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runScenarioCmd(t, newReportCmd(), tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestReportFleetJSON reports on two snapshots (scenario files, as
// snapshot writes them) and checks the JSON: one machine per file, the
// merged view counting both, and every class key present in both merged
// once with both machines.
func TestReportFleetJSON(t *testing.T) {
	out, code := runScenarioCmd(t, newReportCmd(), "--snapshot", "../../examples/gdb-yama.yaml",
		"--snapshot", "../../examples/setuid-program.yaml", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var r struct {
		Version  int `json:"version"`
		Machines []struct {
			Name      string `json:"name"`
			Source    string `json:"source"`
			Processes int    `json:"processes"`
			Edges     []struct {
				Principal string                     `json:"principal"`
				Access    map[string]json.RawMessage `json:"access"`
			} `json:"edges"`
		} `json:"machines"`
		Merged *struct {
			Machines   int `json:"machines"`
			Processes  int `json:"processes"`
			Principals []struct {
				Key      string   `json:"key"`
				Machines []string `json:"machines"`
			} `json:"principals"`
		} `json:"merged"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Version != 1 || len(r.Machines) != 2 || r.Merged == nil {
		t.Fatalf("version %d, %d machines, merged %v", r.Version, len(r.Machines), r.Merged != nil)
	}
	sum := 0
	for _, m := range r.Machines {
		if m.Source != "snapshot" || len(m.Edges) == 0 {
			t.Errorf("machine %s: source %q, %d edges", m.Name, m.Source, len(m.Edges))
		}
		for _, e := range m.Edges {
			if len(e.Access) != 5 {
				t.Errorf("machine %s: edge of %s has %d accesses, want 5", m.Name, e.Principal, len(e.Access))
			}
		}
		sum += m.Processes
	}
	if r.Merged.Machines != 2 || r.Merged.Processes != sum {
		t.Errorf("merged: %d machines, %d processes; want 2, %d", r.Merged.Machines, r.Merged.Processes, sum)
	}
	keys := map[string]bool{}
	for _, p := range r.Merged.Principals {
		if keys[p.Key] {
			t.Errorf("merged principal key %q twice", p.Key)
		}
		keys[p.Key] = true
	}
}
