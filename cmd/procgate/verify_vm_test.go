package main

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
)

func TestParseVMLine(t *testing.T) {
	for _, tc := range []struct {
		line, kind, payload string
	}{
		{"PROCGATE-VM-BEGIN {\"release\":\"6.1.0\"}\r", oracle.VMBeginPrefix, `{"release":"6.1.0"}`},
		{"[    3.1] random: crng init done PROCGATE-VM-RES {}", oracle.VMResPrefix, "{}"},
		{"PROCGATE-VM-END {\"cases\":2}", oracle.VMEndPrefix, `{"cases":2}`},
		{"PROCGATE-VM-ERROR {\"error\":\"x\"}", oracle.VMErrorPrefix, `{"error":"x"}`},
		{"Run /init as init process", "", ""},
		{"PROCGATE-VM-RESULT {}", "", ""},
	} {
		kind, payload := parseVMLine(tc.line)
		if kind != tc.kind || string(payload) != tc.payload {
			t.Errorf("parseVMLine(%q) = %q, %q; want %q, %q", tc.line, kind, payload, tc.kind, tc.payload)
		}
	}
}

func TestReadVMLog(t *testing.T) {
	log := strings.Join([]string{
		"SeaBIOS (version 1.16.2-debian-1.16.2-1)",
		`PROCGATE-VM-BEGIN {"release":"6.1.0-56-amd64","version":"Linux version 6.1.0-56-amd64 (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)","lsms":["lockdown","capability","landlock","yama","apparmor","bpf"],"landlock_abi":2,"yama_scope":0,"cases":2}`,
		`PROCGATE-VM-RES {"step":"yama1","scope":1,"index":0,"case":{"name":"a"},"result":{"index":0,"probes":[{"probe":"maps","result":"ok"}]}}`,
		`PROCGATE-VM-RES {"step":"yama1","scope":1,"index":1,"case":{"name":"b"},"result":{"index":1,"error":"refused"}}`,
		`PROCGATE-VM-END {"cases":2,"refused":1,"seconds":1.5}`,
		"reboot: Power down",
	}, "\r\n")
	var progress bytes.Buffer
	begun := false
	run, err := readVMLog(strings.NewReader(log), &progress, func(*vmRun) { begun = true })
	if err != nil {
		t.Fatal(err)
	}
	if !begun || run.begin == nil || run.end == nil || len(run.results) != 2 {
		t.Fatalf("run = %+v, begun %v", run, begun)
	}
	if run.results[1].Result.Err == nil || run.results[0].Result.Err != nil {
		t.Errorf("refusals: %v, %v", run.results[0].Result.Err, run.results[1].Result.Err)
	}
	if run.end.Seconds != 1.5 || run.begin.LandlockABI != 2 {
		t.Errorf("end %+v begin %+v", run.end, run.begin)
	}
	if !strings.Contains(progress.String(), "step yama1: 2 cases") {
		t.Errorf("progress: %q", progress.String())
	}
	rel, err := vmRelease(run.begin)
	if err != nil || rel != (kernel.Release{Major: 6, Minor: 1, Patch: 192}) {
		t.Errorf("vmRelease = %v, %v; want 6.1.192 from the Debian package version, not gcc's", rel, err)
	}
	if _, err := readVMLog(strings.NewReader("PROCGATE-VM-RES {bad"), nil, nil); err == nil {
		t.Error("a truncated RES line was accepted")
	}
}

func TestVMReleaseFallback(t *testing.T) {
	rel, err := vmRelease(&oracle.VMBegin{Release: "6.12.9-amd64", Version: "Linux version 6.12.9-amd64 (builder) #1 SMP"})
	if err != nil || rel != (kernel.Release{Major: 6, Minor: 12, Patch: 9}) {
		t.Errorf("vmRelease = %v, %v", rel, err)
	}
}

// cpioEntries decodes a newc archive into name -> (mode, data).
func cpioEntries(t *testing.T, b []byte) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for len(b) > 0 {
		if len(b) < 110 || string(b[:6]) != "070701" {
			t.Fatalf("bad header at %q", b[:min(len(b), 16)])
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(b[110 : 110+nameSize-1])
		off := (110 + nameSize + 3) &^ 3
		data := string(b[off : off+size])
		out[name] = [2]string{strconv.FormatInt(int64(mode), 8), data}
		b = b[(off+size+3)&^3:]
		if name == "TRAILER!!!" {
			if len(b) != 0 {
				t.Fatalf("%d bytes after the trailer", len(b))
			}
			break
		}
	}
	return out
}

func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIO(&buf)
	c.dir("dev")
	c.entry("dev/console", cpioChr|0o600, 5, 1, nil)
	c.file("etc/procgate/plan.json", 0o644, []byte("{}"))
	c.file("init", 0o755, []byte("12345"))
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	got := cpioEntries(t, buf.Bytes())
	want := map[string][2]string{
		"dev":                    {"40755", ""},
		"dev/console":            {"20600", ""},
		"etc":                    {"40755", ""},
		"etc/procgate":           {"40755", ""},
		"etc/procgate/plan.json": {"100644", "{}"},
		"init":                   {"100755", "12345"},
		"TRAILER!!!":             {"0", ""},
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// The device node carries its major and minor numbers.
	i := bytes.Index(buf.Bytes(), []byte("dev/console"))
	hdr := buf.Bytes()[i-110 : i]
	if rmaj, rmin := string(hdr[6+8*9:6+8*10]), string(hdr[6+8*10:6+8*11]); rmaj != "00000005" || rmin != "00000001" {
		t.Errorf("console rdev %s:%s, want 5:1 (%s)", rmaj, rmin, hex.EncodeToString(hdr[:16]))
	}
}

func TestExtractTarKeepsOnlyWantedFiles(t *testing.T) {
	dir := t.TempDir()
	// A deb's data archive as dpkg-deb --fsys-tarfile gives it.
	var tb bytes.Buffer
	writeTar(t, &tb, map[string]string{"./boot/vmlinuz-6.1.0-56-amd64": "kernel", "./lib/modules/x.ko": "module", "../evil": "no"})
	names, err := extractTar(&tb, dir, func(n string) bool { return strings.HasPrefix(n, "boot/") || n == "../evil" })
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "boot/vmlinuz-6.1.0-56-amd64" {
		t.Fatalf("extracted %v", names)
	}
	b, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil || string(b) != "kernel" {
		t.Errorf("content %q, %v", b, err)
	}
}

func TestSameAnswerAndGroupKey(t *testing.T) {
	k := oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok", Masked: true}
	m := oracle.ProbeResult{Probe: oracle.ProbeStat, Result: "ok"}
	if sameAnswer(k, m) {
		t.Error("masked and unmasked stat compared equal")
	}
	if !sameAnswer(k, k) {
		t.Error("equal answers differ")
	}
	res := oracle.VMRes{Step: "apparmor", Scope: 0, Case: oracle.Case{
		Prober: func() oracle.Creds { c := oracle.User(1000, 1000); c.AppArmor = "pg-rt"; return c }(),
		Target: oracle.User(2000, 2000),
	}}
	key := groupKey(res, k, m)
	for _, want := range []string{"scope 0", "probe stat", "apparmor=pg-rt", "apparmor=unconfined", "uid=2000", "kernel ok(masked), model ok", "relation sibling"} {
		if !strings.Contains(key, want) {
			t.Errorf("group key %q lacks %q", key, want)
		}
	}
}

func TestCheckStaticExec(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is static and non-PIE exactly when built with
	// CGO_ENABLED=0 and without -race, as the Makefile builds this package.
	err = checkStaticExec(self)
	t.Logf("checkStaticExec(test binary) = %v", err)
	if err := checkStaticExec("/bin/sh"); err == nil {
		t.Error("/bin/sh (dynamic or PIE) accepted as init")
	}
}

func writeTar(t *testing.T, w *bytes.Buffer, files map[string]string) {
	t.Helper()
	tw := tar.NewWriter(w)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVMSuites(t *testing.T) {
	suites, err := vmSuites(verifyVMOpts{suites: []string{suiteAppArmor, suiteSELinux}})
	if err != nil || len(suites) != 2 {
		t.Fatalf("vmSuites = %v, %v", suites, err)
	}
	aa, se := suites[0], suites[1]
	if aa.selinux() || !strings.Contains(aa.cmdline(), "lsm="+vmLSMs+" ") || strings.Contains(aa.cmdline(), "enforcing") || aa.logName() != "vm.log" {
		t.Errorf("apparmor suite: selinux %v, cmdline %q, log %s", aa.selinux(), aa.cmdline(), aa.logName())
	}
	if !se.selinux() || !strings.Contains(se.cmdline(), "lsm="+vmSELinuxLSMs+" enforcing=0 ") || se.logName() != "vm-selinux.log" {
		t.Errorf("selinux suite: selinux %v, cmdline %q, log %s", se.selinux(), se.cmdline(), se.logName())
	}
	if se.plan.SELinuxConf == "" || se.plan.SELinuxModel == "" || len(se.plan.SELinuxPolicy) != 0 {
		t.Error("the selinux suite should carry its policy.conf and model text, compiled later")
	}
	if _, err := vmSuites(verifyVMOpts{suites: []string{"smack"}}); err == nil {
		t.Error("unknown suite accepted")
	}
	if got := strings.Join(checkpolicyArgs("a.conf", "b.33"), " "); got != "-c 33 -U allow -o b.33 a.conf" {
		t.Errorf("checkpolicy args %q", got)
	}
	// A saved log is matched to its suite by the LSMs the VM ran.
	run := &vmRun{begin: &oracle.VMBegin{LSMs: []string{"capability", "yama", "selinux"}}}
	if s := suiteForLog(run, suites[:1]); s.name != suiteSELinux || s.plan.SELinuxModel == "" {
		t.Errorf("suiteForLog(selinux log) = %s", s.name)
	}
	run.begin.LSMs = []string{"capability", "apparmor"}
	if s := suiteForLog(run, suites); s.name != suiteAppArmor {
		t.Errorf("suiteForLog(apparmor log) = %s", s.name)
	}
	// A plan file for SELinux needs the model's text.
	dir := t.TempDir()
	planFile := filepath.Join(dir, "mine.json")
	if err := os.WriteFile(planFile, []byte(`{"selinux_conf":"x","steps":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := vmSuites(verifyVMOpts{planFile: planFile}); err == nil {
		t.Error("an SELinux plan without selinux_model accepted")
	}
}

// compareVM predicts SELinux cases with the suite's policy and the mode
// each case ran in.
func TestCompareVMSELinux(t *testing.T) {
	u := oracle.User(1000, 1000)
	label := func(c oracle.Creds, d string) oracle.Creds { c.SELinux = oracle.SELinuxContext(d); return c }
	res := func(mode, prober, probe, answer string) oracle.VMRes {
		return oracle.VMRes{Step: "selinux", SELinuxMode: mode, Case: oracle.Case{
			Prober: label(u, prober), Target: label(u, "pg_rt_t"), Probes: []oracle.Probe{oracle.Probe(probe)},
		}, Result: oracle.Result{
			Target: oracle.Observed{Pid: 10, UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 1000, 1000, 1000}, Dumpable: 1, InitNS: true},
			Prober: oracle.Observed{Pid: 11, UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 1000, 1000, 1000}, Dumpable: 1, InitNS: true},
			Probes: []oracle.ProbeResult{{Probe: oracle.Probe(probe), Result: answer}},
		}}
	}
	run := &vmRun{
		begin: &oracle.VMBegin{Release: "6.1.0-56-amd64", LSMs: []string{"lockdown", "capability", "landlock", "yama", "selinux", "bpf"}, LandlockABI: 2},
		end:   &oracle.VMEnd{Cases: 4},
		results: []oracle.VMRes{
			res(oracle.SELinuxEnforcing, "pg_none_t", "ptrace_seize", "EACCES"),
			res(oracle.SELinuxEnforcing, "pg_rt_t", "ptrace_seize", "ok"),
			res(oracle.SELinuxPermissive, "pg_none_t", "ptrace_seize", "ok"),
			res(oracle.SELinuxEnforcing, "pg_trace_t", "ptrace_seize", "EACCES"), // wrong on purpose
		},
	}
	suite := &vmSuite{name: suiteSELinux, plan: oracle.VMSELinuxPlan(nil)}
	rep, err := compareVM(run, suite)
	if err != nil {
		t.Fatal(err)
	}
	if rep.predictErrs != 0 {
		t.Fatalf("model errors: %s", rep.firstPredictErr)
	}
	if rep.disagreeCases != 1 || len(rep.groups) != 1 {
		t.Fatalf("%d disagreeing cases, groups %v; want only the pg_trace_t one", rep.disagreeCases, rep.groups)
	}
	key := rep.groups[0].key
	for _, want := range []string{"selinux enforcing", "selinux=pg_trace_t", "selinux=pg_rt_t", "kernel EACCES, model ok"} {
		if !strings.Contains(key, want) {
			t.Errorf("group key %q lacks %q", key, want)
		}
	}
	if k := rep.kernelOf(run.results[2]); k.SELinuxEnforcing || k.SELinux == "" {
		t.Errorf("permissive case predicted with %+v", k)
	}
	var out bytes.Buffer
	rep.print(&out)
	if !strings.Contains(out.String(), "suite selinux:") {
		t.Errorf("report lacks the suite: %s", out.String())
	}
}
