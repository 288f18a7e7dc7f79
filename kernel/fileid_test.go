package kernel_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
)

// TestFileIDOfStat decodes st_dev as glibc does (unix.Major, unix.Minor)
// and encodes it as the kernel's dev_t (MKDEV).
func TestFileIDOfStat(t *testing.T) {
	for _, dev := range []uint64{0, 1, unix.Mkdev(8, 1), unix.Mkdev(254, 0), unix.Mkdev(259, 70000), unix.Mkdev(4095, 0xfffff)} {
		want := kernel.MkDev(unix.Major(dev), unix.Minor(dev))
		if got := kernel.FileIDOfStat(dev, 42); got.Dev != want || got.Ino != 42 {
			t.Errorf("st_dev %#x: %+v, want dev %#x ino 42", dev, got, want)
		}
	}
}
