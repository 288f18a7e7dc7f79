package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// psHelperEnv makes the test binary a helper process for TestPsMatchesProcps
// (see TestMain): "mlock" locks 64 KiB of memory, says "ready" and waits
// for its standard input to close. A Go process has several threads.
const psHelperEnv = "PROCGATE_PS_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(psHelperEnv) == "mlock" {
		buf := make([]byte, 64<<10)
		if err := unix.Mlock(buf); err != nil {
			os.Stdout.WriteString("mlock: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("ready\n")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPsMatchesProcps spawns processes with known states — a zombie, a
// niced and a high-priority one, a session leader, a multi-threaded one
// with locked pages — and compares, for each, ps aux of procps (the
// system's ps) with procgate ps's formatting of the same /proc files the
// broker serves (stat, status, cmdline): RSS, STAT and COMMAND. A process
// whose files change while ps runs is read again.
func TestPsMatchesProcps(t *testing.T) {
	psBin, err := exec.LookPath("ps")
	if err != nil {
		t.Fatalf("procps ps is needed (the CI image has it): %v", err)
	}
	if out, err := exec.Command(psBin, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "procps") {
		t.Fatalf("%s is not procps ps: %v %s", psBin, err, out)
	}
	root := os.Geteuid() == 0
	want := map[int]string{} // pid → what its STAT must show
	start := func(name string, cmd *exec.Cmd, stat string) *exec.Cmd {
		t.Helper()
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		want[cmd.Process.Pid] = stat
		return cmd
	}
	start("plain", exec.Command("sleep", "300"), "S")
	niced := start("niced", exec.Command("sleep", "300"), "SN")
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, niced.Process.Pid, 5); err != nil {
		t.Fatal(err)
	}
	if root {
		high := start("high priority", exec.Command("sleep", "300"), "S<")
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, high.Process.Pid, -5); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("!!! not root: no negative nice, the '<' flag is not compared")
	}
	leader := exec.Command("sleep", "300")
	leader.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start("session leader", leader, "Ss")
	zombie := start("zombie", exec.Command("sleep", "0"), "Z")
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), psHelperEnv+"=mlock")
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start("locked, multi-threaded", helper, "SLl")
	t.Cleanup(func() { stdin.Close() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper: %q", line)
	}
	for i := 0; ; i++ {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(zombie.Process.Pid) + "/stat"); err == nil && strings.Contains(string(b), ") Z ") {
			break
		}
		if i == 500 {
			t.Fatal("the zombie never became one")
		}
		time.Sleep(10 * time.Millisecond)
	}

	si := readSysInfo()
	ours := func() map[int]psRow {
		rows := map[int]psRow{}
		for pid := range want {
			dir := "/proc/" + strconv.Itoa(pid) + "/"
			stat, err1 := os.ReadFile(dir + "stat")
			status, err2 := os.ReadFile(dir + "status")
			cmdline, err3 := os.ReadFile(dir + "cmdline")
			if err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("pid %d: %v %v %v", pid, err1, err2, err3)
			}
			var args []string
			if len(cmdline) > 0 {
				args = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
			}
			r, ok := si.psRow(psInput{PID: pid, Stat: string(stat), Status: string(status), Cmdline: args})
			if !ok {
				t.Fatalf("pid %d: psRow refused %q", pid, stat)
			}
			rows[pid] = r
		}
		return rows
	}
	same := func(a, b psRow) bool { return a.RSS == b.RSS && a.Stat == b.Stat && a.Command == b.Command }
	compared := map[int]bool{}
	for attempt := 0; attempt < 5 && len(compared) < len(want); attempt++ {
		before := ours()
		theirs := procpsRows(t, psBin)
		after := ours()
		for pid, r := range before {
			if compared[pid] || !same(r, after[pid]) {
				continue // changed while ps ran: read again
			}
			compared[pid] = true
			p, ok := theirs[pid]
			switch {
			case !ok:
				t.Errorf("pid %d: procps ps aux does not list it", pid)
			case !same(r, p):
				t.Errorf("pid %d: procgate ps RSS %d STAT %q COMMAND %q, procps RSS %d STAT %q COMMAND %q",
					pid, r.RSS, r.Stat, r.Command, p.RSS, p.Stat, p.Command)
			}
			// The flags the process was made to have (the '+' of a
			// foreground group depends on how the test was started).
			if got := strings.TrimSuffix(r.Stat, "+"); got != want[pid] {
				t.Errorf("pid %d: STAT %q, want %q", pid, r.Stat, want[pid])
			}
		}
	}
	if len(compared) < len(want) {
		t.Errorf("only %d of %d processes held still while ps ran", len(compared), len(want))
	}
	if r := ours()[zombie.Process.Pid]; r.Command != "[sleep] <defunct>" || r.RSS != 0 {
		t.Errorf("zombie: %+v", r)
	}
}

// procpsRows runs ps aux and returns RSS, STAT and COMMAND by pid.
func procpsRows(t *testing.T, psBin string) map[int]psRow {
	t.Helper()
	out, err := exec.Command(psBin, "aux").Output()
	if err != nil {
		t.Fatalf("ps aux: %v", err)
	}
	rows := map[int]psRow{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 11 || f[0] == "USER" {
			continue
		}
		pid, err1 := strconv.Atoi(f[1])
		rss, err2 := strconv.ParseUint(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("ps aux line %q", sc.Text())
		}
		rows[pid] = psRow{RSS: rss, Stat: f[7], Command: strings.Join(f[10:], " ")}
	}
	return rows
}
