package oracle

import (
	"debug/elf"
	"os"
	"strings"
	"testing"
	"time"
)

// TestVMReadvMarker spawns a target, reads the marker address from its ready
// line and probes it with process_vm_readv from this process: at the
// reported address the read returns the marker; without an address, or at
// another address, the probe says so as an error instead of "ok". In a
// position-independent build with address-space randomization (the race
// detector's), the target's address differs from this process's, so the
// probe depends on the reported one.
func TestVMReadvMarker(t *testing.T) {
	r := needRunner(t)
	p, err := r.start(&spawnReq{role: roleTarget, creds: Root(FullCaps()), stderr: &tailBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close(5 * time.Second)
	if err := p.awaitReady(r, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	addr := p.ready.Marker
	if addr == 0 {
		t.Fatal("the target's ready line carries no marker address")
	}
	if moved := pieWithASLR(t); moved && addr == markerAddr() {
		t.Errorf("PIE build with ASLR, yet the target's marker is at this process's address %#x", addr)
	} else {
		t.Logf("marker at %#x in the target, %#x here (PIE with ASLR: %v)", addr, markerAddr(), moved)
	}
	for _, tc := range []struct {
		name   string
		marker uint64
		want   string
	}{
		{"the reported address", addr, "ok"},
		{"no address", 0, "error"},
		{"inside the marker, not at its start", addr + 1, "error"},
	} {
		rep := probeItem(jobItem{Pid: p.ready.Pid, Marker: tc.marker, Probes: []Probe{ProbeVMReadv}})
		if len(rep.Probes) != 1 || rep.Probes[0].Result != tc.want {
			t.Errorf("%s: %+v, want %s", tc.name, rep.Probes, tc.want)
		}
	}
}

// pieWithASLR reports whether this binary is position-independent and the
// kernel randomizes its load address.
func pieWithASLR(t *testing.T) bool {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := os.ReadFile("/proc/sys/kernel/randomize_va_space")
	if err != nil {
		t.Fatal(err)
	}
	return f.Type == elf.ET_DYN && strings.TrimSpace(string(b)) != "0"
}
