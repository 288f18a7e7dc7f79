package bpflsm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// envHookHelper makes the test binary the hook helper (runHookHelper)
// instead of running the tests.
const envHookHelper = "PROCGATE_BPFLSM_HOOK_HELPER"

// envHookCaps, when set, is the permitted (and effective) capability set
// the hook helper's thread keeps before it runs the hooks, in hex.
const envHookCaps = "PROCGATE_BPFLSM_HOOK_CAPS"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envHookHelper); dir != "" {
		if err := runHookHelper(dir); err != nil {
			fmt.Fprintln(os.Stderr, "hook helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHookHelper runs the hooks' decision (bench_hook_btf and
// bench_hook_probe) on the maps pinned under dir, with itself as the
// subject and its parent as the target, once per line of standard
// input ("btf" or "probe"), writing 1 (denied) or 0 per line: a
// process that TestHookPIDNSNested starts in a pid namespace of its own.
func runHookHelper(dir string) error {
	spec, err := ptraceSpec()
	if err != nil {
		return err
	}
	repl := map[string]*ebpf.Map{}
	for _, name := range []string{"rulesets", "pairsets", "bench_ids", "bench_out"} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return err
		}
		defer m.Close()
		repl[name] = m
	}
	var h struct {
		BTF   *ebpf.Program `ebpf:"bench_hook_btf"`
		Probe *ebpf.Program `ebpf:"bench_hook_probe"`
	}
	if err := spec.Copy().LoadAndAssign(&h, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return err
	}
	defer h.BTF.Close()
	defer h.Probe.Close()
	if v := os.Getenv(envHookCaps); v != "" {
		// Capabilities are per thread: this one keeps the set and runs
		// the programs (BPF_PROG_TEST_RUN runs them in the caller).
		caps, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			return err
		}
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{{Effective: uint32(caps), Permitted: uint32(caps)}, {Effective: uint32(caps >> 32), Permitted: uint32(caps >> 32)}}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capset: %w", err)
		}
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		prog := h.BTF
		if in.Text() == "probe" {
			prog = h.Probe
		}
		if err := repl["bench_out"].Put(uint32(0), ptraceBenchOut{}); err != nil {
			return err
		}
		if _, err := prog.Run(&ebpf.RunOptions{}); err != nil {
			return err
		}
		var out ptraceBenchOut
		if err := repl["bench_out"].Lookup(uint32(0), &out); err != nil {
			return err
		}
		if out.Judged != 1 {
			return fmt.Errorf("judged %d times", out.Judged)
		}
		fmt.Println(out.Denied)
	}
	return in.Err()
}
