package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/oracle"
)

// vmLog writes a console log with one Yama-scope-1 case of two same-uid
// siblings whose ptrace_seize the kernel answered with seize (the model
// says EPERM); finished says whether the VM printed its END line.
func vmLog(t *testing.T, seize string, finished bool) string {
	t.Helper()
	ids := [4]uint32{1000, 1000, 1000, 1000}
	obs := func(pid int) oracle.Observed {
		return oracle.Observed{Pid: pid, UID: ids, GID: ids, Dumpable: 1, InitNS: true}
	}
	var b bytes.Buffer
	line := func(prefix string, v any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(prefix + string(j) + "\n")
	}
	line(oracle.VMBeginPrefix, oracle.VMBegin{Release: "6.1.0-56-amd64", LSMs: []string{"capability", "yama"}, Cases: 1})
	line(oracle.VMResPrefix, oracle.VMRes{Step: "yama1", Scope: 1, Case: oracle.Case{
		Name: "sibling", Prober: oracle.User(1000, 1000), Target: oracle.User(1000, 1000), Probes: []oracle.Probe{oracle.ProbePtraceSeize},
	}, Result: oracle.Result{Target: obs(10), Prober: obs(11), Probes: []oracle.ProbeResult{{Probe: oracle.ProbePtraceSeize, Result: seize}}}})
	if finished {
		line(oracle.VMEndPrefix, oracle.VMEnd{Cases: 1})
	}
	path := filepath.Join(t.TempDir(), "vm.log")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The command maps the package's outcome to the exit status: 0 all agree,
// 1 a disagreement or too few cases, 2 a setup error or an unfinished VM.
func TestVerifyVMExitStatus(t *testing.T) {
	agree, disagree, cut := vmLog(t, "EPERM", true), vmLog(t, "ok", true), vmLog(t, "EPERM", false)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"agrees", []string{"--from-log", agree, "--min-cases", "1"}, 0, ""},
		{"too few cases", []string{"--from-log", agree}, 1, "kernel 6.1.0-56-amd64: only 1 cases ran, want at least 300"},
		{"disagrees", []string{"--from-log", disagree, "--min-cases", "1"}, 1, "1 disagreeing"},
		{"unfinished", []string{"--from-log", cut, "--min-cases", "1"}, 2, "did not finish its plan"},
		{"no packages", nil, 2, "--kernel-deb"},
		{"unknown suite", []string{"--suites", "smack", "--from-log", agree}, 2, `unknown suite "smack"`},
		{"unknown release", []string{"--release", "buster"}, 2, `unknown release "buster"`},
		{"release not downloaded", []string{"--release", "bullseye", "--work", t.TempDir()}, 2, "--fetch-only"},
		{"bad kernel-deb", []string{"--kernel-deb", "sid=/x.deb"}, 2, `unknown release "sid"`},
		{"no summaries for the table", []string{"--kernels-md", filepath.Join(t.TempDir(), "k.md"), "--work", t.TempDir()}, 2, "no summary.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newVerifyVMCmd()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append(tc.args, "--out", t.TempDir()))
			err := cmd.Execute()
			code := 0
			if err != nil {
				ee, ok := err.(*exitError)
				if !ok {
					t.Fatalf("error %v is not an exit status", err)
				}
				code = ee.Code
			}
			if code != tc.code || (tc.msg != "" && !strings.Contains(err.Error(), tc.msg)) {
				t.Errorf("exit %d (%v), want %d with %q\n%s", code, err, tc.code, tc.msg, out.String())
			}
		})
	}
}
