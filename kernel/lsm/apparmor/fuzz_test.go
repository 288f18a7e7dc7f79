package apparmor_test

import (
	"errors"
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/apparmor"
)

// FuzzParse checks that Parse never panics, that failures carry
// positions and that parsed profiles answer ptrace questions.
func FuzzParse(f *testing.F) {
	f.Add(s12)
	f.Add("profile a flags=(complain) {\n  audit deny ptrace (read, trace) peer={a,b*}/**,\n  capability sys_ptrace,\n}")
	f.Add("/usr/bin/x { /etc/{a,b} r, ptrace w peer=\"q \\\" x\", }")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := apparmor.Parse(src)
		if err != nil {
			var e *apparmor.Error
			if !errors.As(err, &e) || e.Line < 1 || e.Col < 1 || e.Msg == "" {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		w := kernel.NewWorld(kernel.DefaultRelease)
		m := apparmor.New(p)
		names := append(p.Names(), "unconfined")
		var tasks []*kernel.Task
		for i, n := range names {
			tasks = append(tasks, &kernel.Task{Name: n, PID: i + 1, TGID: i + 1, AppArmor: n})
		}
		for _, a := range tasks {
			for _, b := range tasks {
				m.PtraceAccessCheck(kernel.Env{W: w, T: &kernel.Trace{}}, a, b, kernel.ReadFSCreds)
			}
		}
	})
}
