package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// hammerSpec is what the hammer role opens, and for how long.
type hammerSpec struct {
	Pid    int `json:"pid"`
	Millis int `json:"millis"`
}

// hammerReport is the hammer's one output line.
type hammerReport struct {
	Opens   int            `json:"opens"`
	Allowed int            `json:"allowed"`
	Errors  map[string]int `json:"errors,omitempty"`
}

// runHammer opens /proc/PID/environ until the time is up, counting what
// the kernel answers, then writes the counts.
func runHammer(spec *childSpec) error {
	h := spec.Hammer
	if h == nil || h.Pid <= 0 {
		return fmt.Errorf("hammer without a target")
	}
	path := "/proc/" + strconv.Itoa(h.Pid) + "/environ"
	rep := hammerReport{Errors: map[string]int{}}
	end := time.Now().Add(time.Duration(h.Millis) * time.Millisecond)
	for time.Now().Before(end) {
		for range 64 {
			rep.Opens++
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				rep.Errors[errName(err)]++
				continue
			}
			rep.Allowed++
			unix.Close(fd)
		}
	}
	return writeJSON(os.Stdout, rep)
}

// vmReloadUnderLoad runs the reload-under-load check while the program
// enforces rs: a target with the credentials of a class rs protects from
// every reader (uid), and a root hammer started in the cases' cgroup
// (not exempt) opening its environ, while init swaps the rule set.
func (r *Runner) vmReloadUnderLoad(step string, rs *bpf.RuleSet, uid uint32, reloads int) VMReload {
	res := VMReload{Step: step}
	fail := func(err error) VMReload { res.Err = err.Error(); return res }
	start := func(spec *childSpec) (*os.File, *bufio.Reader, func(), error) {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, err
		}
		cmd, err := commandPath(r.exe, spec, inR, outW)
		if err != nil {
			return nil, nil, nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: r.cgroupFD >= 0, CgroupFD: r.cgroupFD}
		err = cmd.Start()
		inR.Close()
		outW.Close()
		if err != nil {
			return nil, nil, nil, err
		}
		return inW, bufio.NewReader(outR), func() { inW.Close(); outR.Close(); waitOrKill(cmd, 10*time.Second) }, nil
	}
	_, trd, stop, err := start(&childSpec{Role: roleTarget, Creds: User(uid, uid)})
	if err != nil {
		return fail(fmt.Errorf("start the protected target: %w", err))
	}
	defer stop()
	line, err := trd.ReadBytes('\n')
	var ready readyMsg
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil || ready.Err != "" || ready.Pid <= 0 {
		return fail(fmt.Errorf("protected target not ready: %v %s", err, ready.Err))
	}
	const millis = 3000
	_, hrd, hstop, err := start(&childSpec{Role: roleHammer, Hammer: &hammerSpec{Pid: ready.Pid, Millis: millis}})
	if err != nil {
		return fail(fmt.Errorf("start the hammer: %w", err))
	}
	defer hstop()
	t0 := time.Now()
	gap := time.Duration(millis) * time.Millisecond / time.Duration(reloads+1)
	for i := range reloads {
		time.Sleep(gap)
		next := *rs
		next.Generation = rs.Generation + uint64(i) + 1
		if err := bpflsm.Reload(&next, bpflsm.DefaultPinDir); err != nil {
			return fail(fmt.Errorf("reload %d: %w", i+1, err))
		}
		res.Reloads++
	}
	line, err = hrd.ReadBytes('\n')
	var rep hammerReport
	if err == nil {
		err = json.Unmarshal(line, &rep)
	}
	if err != nil {
		return fail(fmt.Errorf("hammer report: %w", err))
	}
	res.Opens, res.Allowed, res.Errors = rep.Opens, rep.Allowed, rep.Errors
	res.Seconds = time.Since(t0).Seconds()
	return res
}
