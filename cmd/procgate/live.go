package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/scenario"
)

// runLiveCheck answers one question about two live processes: may
// callerPID access targetPID through entry, syscall or mode (exactly one
// non-empty)? It reads the two processes (with their ancestors, leaders
// and tracers, and their user namespaces) and prints the answer in the
// scenario form's formats: one line, a story with explain, or the JSON
// report. Each input the answer depends on that cannot be read is
// printed as "depends on unknown: …" (JSON: "unknown"). A pid may name a
// thread: the question is then about that thread, as the kernel's
// ptrace_may_access is about a task. Errors carry exit status 2 (invalid
// input, including a pid that does not exist or exits while it is read:
// "pid N: no such process").
func runLiveCheck(out io.Writer, callerPID, targetPID int, entry, syscall, mode string, jsonOut, explain bool) error {
	c := &scenario.Check{Name: "live"}
	var a live.Access
	given := 0
	if entry != "" {
		given++
		e, err := kernel.LookupEntry(entry)
		if err != nil {
			return &exitError{2, fmt.Errorf("check: %w", err)}
		}
		c.Entry, c.EntryPath, a.Entry = e, entry, e
	}
	if syscall != "" {
		given++
		sc, err := kernel.LookupSyscall(syscall)
		if err != nil {
			return &exitError{2, fmt.Errorf("check: %w", err)}
		}
		c.Syscall, a.Syscall = sc, sc
	}
	if mode != "" {
		given++
		m, err := kernel.ParseMode(mode)
		if err != nil {
			return &exitError{2, fmt.Errorf("check: %w", err)}
		}
		c.Mode, a.Mode = m, m
	}
	if given != 1 {
		return &exitError{2, errors.New("check: give exactly one of --entry, --syscall or --mode")}
	}
	if callerPID <= 0 || targetPID <= 0 {
		return &exitError{2, fmt.Errorf("check: --caller and --target take positive pids (got %d and %d)", callerPID, targetPID)}
	}
	sys, err := live.ReadPIDs([]int{callerPID, targetPID}, live.Options{MountSecurityFS: true})
	if err != nil {
		return liveReadError("check", err)
	}
	c.Caller, c.Target = sys.World.TaskByPID(callerPID), sys.World.TaskByPID(targetPID)
	if c.Caller == nil || c.Target == nil {
		return &exitError{2, fmt.Errorf("check: pid %d or %d vanished while read: no such process", callerPID, targetPID)}
	}
	if c.Syscall != nil && c.Syscall.Name == "ptrace_traceme" &&
		(c.Caller.Parent == nil || c.Caller.Parent.GroupLeader() != c.Target.GroupLeader()) {
		return &exitError{2, fmt.Errorf("check: PTRACE_TRACEME names the caller's parent as tracer; pid %d is not the parent of pid %d", targetPID, callerPID)}
	}
	d := sys.Decide(c.Caller, c.Target, a, jsonOut || explain)
	switch {
	case jsonOut:
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"results": []checkResult{resultOf(c, d, true)}})
	case explain:
		var buf bytes.Buffer
		writeStory(&buf, sys.World, c, d, true)
		story := bytes.TrimRight(buf.Bytes(), "\n")
		if _, err := out.Write(append(story, '\n')); err != nil {
			return err
		}
		for _, u := range d.Unknown {
			fmt.Fprintf(out, "  Depends on unknown: %s.\n", u)
		}
		_, err := fmt.Fprintln(out)
		return err
	}
	writeLine(out, c, d, true)
	for _, u := range d.Unknown {
		fmt.Fprintf(out, "     depends on unknown: %s\n", u)
	}
	return nil
}
