package vm

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestQemuArgs(t *testing.T) {
	m := machine{qemu: "qemu-system-x86_64", smp: 2, memMiB: 1024, timeout: time.Minute}
	args := m.qemuArgs("vmlinuz", "initrd.gz", "console=ttyS0 panic=-1")
	got := strings.Join(args, " ")
	for _, want := range []string{"-accel tcg", "-smp 2", "-m 1024", "-serial stdio", "-no-reboot", "-net none", "-kernel vmlinuz", "-initrd initrd.gz"} {
		if !strings.Contains(got, want) {
			t.Errorf("qemu args %q lack %q", got, want)
		}
	}
	// The command line is one argument, however many words it has.
	if i := slices.Index(args, "-append"); i < 0 || args[i+1] != "console=ttyS0 panic=-1" {
		t.Errorf("-append in %q", args)
	}
}

func TestBootWithoutQemu(t *testing.T) {
	m := machine{qemu: filepath.Join(t.TempDir(), "no-qemu"), smp: 1, memMiB: 64, timeout: time.Minute}
	_, err := m.boot(context.Background(), &bytes.Buffer{}, "vmlinuz", "initrd", "", filepath.Join(t.TempDir(), "vm.log"))
	if err == nil || !strings.Contains(err.Error(), "is qemu-system-x86 installed?") {
		t.Errorf("boot without qemu: %v", err)
	}
}
