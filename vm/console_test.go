package vm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
)

func TestParseLine(t *testing.T) {
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
		kind, payload := parseLine(tc.line)
		if kind != tc.kind || string(payload) != tc.payload {
			t.Errorf("parseLine(%q) = %q, %q; want %q, %q", tc.line, kind, payload, tc.kind, tc.payload)
		}
	}
}

func TestReadConsole(t *testing.T) {
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
	run, err := readConsole(strings.NewReader(log), &progress, func(*consoleRun) { begun = true })
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
	rel, err := release(run.begin)
	if err != nil || rel != (kernel.Release{Major: 6, Minor: 1, Patch: 192}) {
		t.Errorf("release = %v, %v; want 6.1.192 from the Debian package version, not gcc's", rel, err)
	}
	if _, err := readConsole(strings.NewReader("PROCGATE-VM-RES {bad"), nil, nil); err == nil {
		t.Error("a truncated RES line was accepted")
	} else if !strings.Contains(err.Error(), "line 1") {
		t.Errorf("error %q does not name the console line", err)
	}
}

func TestReleaseFallback(t *testing.T) {
	rel, err := release(&oracle.VMBegin{Release: "6.12.9-amd64", Version: "Linux version 6.12.9-amd64 (builder) #1 SMP"})
	if err != nil || rel != (kernel.Release{Major: 6, Minor: 12, Patch: 9}) {
		t.Errorf("release = %v, %v", rel, err)
	}
}
