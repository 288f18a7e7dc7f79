package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/scenario"
)

func runSnapshotCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newSnapshotCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// The snapshot of this process (and its ancestors) is written to a file
// and loads back as a scenario with the same tasks.
func TestSnapshotPIDToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.yaml")
	if _, err := runSnapshotCmd(t, "--pid", itoa(os.Getpid()), "-o", path); err != nil {
		t.Fatal(err)
	}
	s, err := scenario.LoadFile(path)
	if err != nil {
		t.Fatalf("snapshot does not load: %v", err)
	}
	self := s.World.TaskByPID(os.Getpid())
	if self == nil {
		t.Fatal("this process is not in its own snapshot")
	}
	if self.Parent == nil || self.Parent.PID != os.Getppid() {
		t.Errorf("parent %v, want pid %d", self.Parent, os.Getppid())
	}
	src, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(src), "# Live snapshot written by procgate snapshot") || !strings.Contains(string(src), "Landlock domains") {
		t.Errorf("header comment missing:\n%.400s", src)
	}
}

// A snapshot of the whole system to standard output loads back.
func TestSnapshotAll(t *testing.T) {
	out, err := runSnapshotCmd(t)
	if err != nil {
		t.Fatal(err)
	}
	s, err := scenario.Load("stdout.yaml", []byte(out))
	if err != nil {
		t.Fatalf("snapshot does not load: %v", err)
	}
	if s.World.TaskByPID(os.Getpid()) == nil || len(s.World.Tasks) < 2 {
		t.Errorf("%d tasks; this process missing", len(s.World.Tasks))
	}
}

func TestSnapshotMissingPID(t *testing.T) {
	_, err := runSnapshotCmd(t, "--pid", itoa(neverPID))
	ee, ok := err.(*exitError)
	if !ok || ee.Code != 2 || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("got %v, want exit 2 with no such process", err)
	}
}

// A thread id is written as that thread, with its process.
func TestSnapshotThreadPID(t *testing.T) {
	tid := proctest.LockedThread(t)
	out, err := runSnapshotCmd(t, "--pid", itoa(tid))
	if err != nil {
		t.Fatal(err)
	}
	s, err := scenario.Load("stdout.yaml", []byte(out))
	if err != nil {
		t.Fatalf("snapshot does not load: %v", err)
	}
	th, leader := s.World.TaskByPID(tid), s.World.TaskByPID(os.Getpid())
	if th == nil || leader == nil || th.TGID != os.Getpid() || th.Leader != leader {
		t.Errorf("thread %d: %+v; want a thread of %d", tid, th, os.Getpid())
	}
}

// A process that exits while it is snapshotted is "no such process",
// exit 2, whenever the read notices; never another error.
func TestSnapshotProcessExits(t *testing.T) {
	raceExits(t, 100, func(_, pid int) error {
		return runSnapshot(io.Discard, snapshotOpts{pids: []int{pid}})
	})
}
