package bpflsm

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

func testDenialBytes(t *testing.T) ([]byte, Denial) {
	w := wireDenial{Generation: 9, PID: 101, TGID: 100, TPID: 201, TTGID: 200, UID: 0, TUID: 3333, Access: 1, Traceme: 1, SubjectClasses: 0, TargetClasses: 1<<5 | 1<<63}
	copy(w.Comm[:], "cat")
	copy(w.TComm[:], "ssh-agent-with-a-long-name")
	b, err := binary.Append(nil, binary.NativeEndian, &w)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != denialSize {
		t.Fatalf("wireDenial is %d bytes, struct denial %d", len(b), denialSize)
	}
	return b, Denial{Generation: 9, PID: 101, TGID: 100, TPID: 201, TTGID: 200, UID: 0, TUID: 3333, Access: bpf.Attach, Traceme: true,
		TargetClasses: 1<<5 | 1<<63, Comm: "cat", TComm: "ssh-agent-with-a"}
}

func TestDecodeDenial(t *testing.T) {
	b, want := testDenialBytes(t)
	got, err := decodeDenial(b)
	if err != nil || got != want {
		t.Errorf("decoded %+v, %v; want %+v", got, err, want)
	}
	if _, err := decodeDenial(b[:40]); err == nil {
		t.Error("a short record decoded")
	}
}

// TestDenialsRingBuffer writes a denial into a ring buffer made from the
// program's own map spec, pinned as Attach pins it, with a socket filter
// run by BPF_PROG_TEST_RUN (this machine refuses LSM programs, not
// those), and reads it back as procgate enforce does.
func TestDenialsRingBuffer(t *testing.T) {
	testenv.RequireRoot(t, "creating BPF maps and programs and mounting bpffs need CAP_SYS_ADMIN")
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	spec, err := ptraceSpec()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(spec.Maps[ptraceMapDenials].Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(dir + "/" + pinDenials); err != nil {
		t.Fatal(err)
	}
	rec, want := testDenialBytes(t)
	var insns asm.Instructions
	for off := 0; off < len(rec); off += 4 {
		insns = append(insns, asm.StoreImm(asm.R10, int16(off-len(rec)), int64(int32(binary.NativeEndian.Uint32(rec[off:]))), asm.Word))
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(-len(rec))),
		asm.Mov.Imm(asm.R3, int32(len(rec))),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load the writer: %v", err)
	}
	defer prog.Close()

	rd, err := OpenDenials(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rd.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := rd.Read(); !errors.Is(err, ErrNoDenial) {
		t.Fatalf("an empty ring buffer: %v", err)
	}
	for range 3 {
		if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
			t.Fatalf("run the writer: %v", err)
		}
	}
	rd.SetDeadline(time.Now().Add(2 * time.Second))
	for i := range 3 {
		got, err := rd.Read()
		if err != nil || got != want {
			t.Fatalf("denial %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	done := make(chan error)
	rd.SetDeadline(time.Time{})
	go func() { _, err := rd.Read(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	rd.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("a read ended by Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("Close did not end a waiting Read")
	}
}
