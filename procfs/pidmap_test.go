package procfs

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostStatus is the status of thread 4243 of process 4242, in a pid
// namespace two levels below the reader's procfs's (7 and 2 there),
// traced by 4100, child of 4000, in a process group and session led from
// outside its namespaces.
const hostStatus = "Name:\tworker\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t4100\nPid:\t4243\nPPid:\t4000\nTracerPid:\t4100\n" +
	"Uid:\t0\t0\t0\t0\nNStgid:\t4242\t6\t1\nNSpid:\t4243\t7\t2\nNSpgid:\t4000\t5\t0\nNSsid:\t3000\t0\t0\nKthread:\t0\n"

// pidTable is a PIDMap.PID over a fixed table; pids it lacks are
// invisible (0).
func pidTable(m map[int]int) func(int) int {
	return func(h int) int { return m[h] }
}

func TestParseNSIDs(t *testing.T) {
	got, err := ParseNSIDs([]byte(hostStatus))
	want := NSIDs{Tgid: []int{4242, 6, 1}, Pid: []int{4243, 7, 2}, Pgid: []int{4000, 5, 0}, Sid: []int{3000, 0, 0}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"Pid:\t1\n", "NSpid:\t1\tx\n"} {
		if _, err := ParseNSIDs([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseNSIDs(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestPIDMapStatus(t *testing.T) {
	pids := pidTable(map[int]int{4000: 5}) // the tracer is invisible
	tests := []struct {
		level int
		want  map[string]string
	}{
		{1, map[string]string{"Tgid": "6", "Ngid": "0", "Pid": "7", "PPid": "5", "TracerPid": "0",
			"NStgid": "6\t1", "NSpid": "7\t2", "NSpgid": "5\t0", "NSsid": "0\t0"}},
		{2, map[string]string{"Tgid": "1", "Pid": "2", "NStgid": "1", "NSpid": "2", "NSpgid": "0", "NSsid": "0"}},
	}
	for _, tc := range tests {
		b, ids, err := PIDMap{Level: tc.level, PID: pids}.Status([]byte(hostStatus))
		if err != nil {
			t.Fatalf("level %d: %v", tc.level, err)
		}
		if ids.Pid[0] != 4243 {
			t.Errorf("level %d: ids %+v", tc.level, ids)
		}
		lines := map[string]string{}
		for l := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
			k, v, _ := strings.Cut(l, ":\t")
			lines[k] = v
		}
		for k, v := range tc.want {
			if lines[k] != v {
				t.Errorf("level %d: %s = %q, want %q", tc.level, k, lines[k], v)
			}
		}
		// Lines without pids are as they were.
		for _, k := range []string{"Name", "State", "Uid", "Kthread"} {
			if !strings.Contains(hostStatus, k+":\t"+lines[k]+"\n") {
				t.Errorf("level %d: %s changed to %q", tc.level, k, lines[k])
			}
		}
	}
	if _, _, err := (PIDMap{Level: 3, PID: pids}).Status([]byte(hostStatus)); !errors.Is(err, ErrMalformed) {
		t.Errorf("a task above the reader's level: %v, want ErrMalformed", err)
	}
}

func TestPIDMapStat(t *testing.T) {
	ids := NSIDs{Pid: []int{4243, 7}, Pgid: []int{4000, 5}, Sid: []int{3000, 0}}
	tests := []struct {
		name, in, want string
		pids           map[int]int
	}{
		{"own group in the foreground",
			"4243 (a (b) c) S 4000 4000 3000 34816 4000 4194560 115 0\n",
			"7 (a (b) c) S 5 5 0 34816 5 4194560 115 0\n", map[int]int{4000: 5}},
		{"no terminal; an invisible parent",
			"4243 (x) S 4000 4000 3000 0 -1 4194560\n",
			"7 (x) S 0 5 0 0 -1 4194560\n", nil},
		{"another foreground group",
			"4243 (x) R 4000 4000 3000 34816 4500 0\n",
			"7 (x) R 5 5 0 34816 9 0\n", map[int]int{4000: 5, 4500: 9}},
	}
	for _, tc := range tests {
		got, err := PIDMap{Level: 1, PID: pidTable(tc.pids)}.Stat([]byte(tc.in), ids)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "4243 (x", "x (x) S 1 1 1 0 -1", "4243 (x) S y 1 1 0 -1"} {
		if _, err := (PIDMap{Level: 1, PID: pidTable(nil)}).Stat([]byte(bad), ids); !errors.Is(err, ErrMalformed) {
			t.Errorf("Stat(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestPIDMapSched(t *testing.T) {
	ids := NSIDs{Pid: []int{4243, 7}}
	m := PIDMap{Level: 1, PID: pidTable(nil)}
	for in, want := range map[string]string{
		"sleep (4243, #threads: 1)\n----\nse.exec_start : 1.5\n": "sleep (7, #threads: 1)\n----\nse.exec_start : 1.5\n",
		"a (1, #threads: 2) (4243, #threads: 1)\n---\n":          "a (1, #threads: 2) (7, #threads: 1)\n---\n",
		"no pid line here\n":                                      "no pid line here\n",
		"sleep (4999, #threads: 1)\n":                             "sleep (0, #threads: 1)\n",
		"sleep (4243, #threads: 1)":                               "sleep (7, #threads: 1)",
		"sleep (x, #threads: 1)\n":                                "sleep (x, #threads: 1)\n",
		"sleep 4243, #threads: 1)\n":                              "sleep 4243, #threads: 1)\n",
		"sleep (4243, #threads: 1)\nsleep (4243, #threads: 1)\n":  "sleep (7, #threads: 1)\nsleep (4243, #threads: 1)\n",
		"worker (b (4243, #threads: 3)\nnr_switches : 4243\n":     "worker (b (7, #threads: 3)\nnr_switches : 4243\n",
		"worker (4243, #threads: 3)\nse.nr_migrations : 4243\n\n": "worker (7, #threads: 3)\nse.nr_migrations : 4243\n\n",
	} {
		if got := string(m.Sched([]byte(in), ids)); got != want {
			t.Errorf("Sched(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPIDMapFDInfo(t *testing.T) {
	const head = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n"
	m := PIDMap{Level: 1, PID: pidTable(map[int]int{4243: 7})}
	for in, want := range map[string]string{
		head + "Pid:\t4243\nNSpid:\t4243\t7\t2\n": head + "Pid:\t7\nNSpid:\t7\t2\n",
		head + "Pid:\t4500\nNSpid:\t4500\n":       head + "Pid:\t-1\nNSpid:\t-1\n", // invisible
		head + "Pid:\t-1\nNSpid:\t-1\n":           head + "Pid:\t-1\nNSpid:\t-1\n", // exited
		head + "Pid:\t4243\nNSpid:\t4243\n":       head + "Pid:\t7\nNSpid:\t7\n",   // no deeper list
		head:                                      head,                            // no pidfd
		"pos:\t0\ntfd:       5 events:       19 data:                5  pos:0 ino:c5e sdev:f\n": "pos:\t0\ntfd:       5 events:       19 data:                5  pos:0 ino:c5e sdev:f\n",
	} {
		if got := string(m.FDInfo([]byte(in))); got != want {
			t.Errorf("FDInfo(%q) = %q, want %q", in, got, want)
		}
	}

	// A real pidfd's fdinfo, of this process, as seen one level down
	// where it is pid 42.
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("SKIPPED: pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	got := string(PIDMap{Level: 1, PID: pidTable(map[int]int{self: 42})}.FDInfo(b))
	if !strings.Contains(got, "\nPid:\t42\n") || !strings.Contains(got, "\nNSpid:\t42\n") || strings.Contains(got, strconv.Itoa(self)) {
		t.Errorf("fdinfo of a pidfd %q became %q", b, got)
	}
}
