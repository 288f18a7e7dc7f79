package kernel_test

import (
	"testing"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
)

// TestMutation pins what each kernel.Mutation breaks (the verifier's
// mutation test relies on it): every one changes one answer the zero
// Mutation gives, and undoing it restores the answer.
func TestMutation(t *testing.T) {
	w := kernel.NewWorld(kernel.DefaultRelease)
	w.LSMs = []kernel.LSM{capability.New()}
	mk := func(name string, pid int, uid kernel.KUID, eff, prm kernel.CapSet, d kernel.Dumpable) *kernel.Task {
		g := kernel.KGID(uid)
		tk := &kernel.Task{Name: name, PID: pid, TGID: pid,
			Cred: kernel.Cred{UID: uid, EUID: uid, SUID: uid, FSUID: uid, GID: g, EGID: g, SGID: g, FSGID: g, UserNS: w.Init, CapEffective: eff, CapPermitted: prm},
			MM:   &kernel.MM{Dumpable: d, UserNS: w.Init}}
		tk.Leader = tk
		w.AddTask(tk)
		return tk
	}
	raw := kernel.CapsOf(kernel.CapNetRaw)
	caller := mk("caller", 100, 1000, 0, raw, kernel.SuidDumpUser)
	thread := *caller
	thread.Name, thread.PID, thread.Leader = "thread", 101, caller
	other := mk("other", 200, 2000, 0, 0, kernel.SuidDumpUser)
	nodump := mk("nodump", 300, 1000, 0, 0, kernel.SuidDumpDisable)
	capped := mk("capped", 400, 1000, raw, raw, kernel.SuidDumpUser)
	stat, _ := kernel.LookupEntry("stat")
	exe, _ := kernel.LookupEntry("exe")

	// The caller's permitted set holds CAP_NET_RAW, its effective set
	// does not: commoncap passes REALCREDS and fails FSCREDS.
	capTarget := mk("captarget", 500, 1000, raw, raw, kernel.SuidDumpUser)
	for _, tc := range []struct {
		name   string
		m      kernel.Mutation
		target *kernel.Task
		check  func(target *kernel.Task) string
	}{
		{"thread group", kernel.Mutation{Skip: kernel.SkipThreadGroup}, &thread, func(tg *kernel.Task) string {
			return w.PtraceMayAccess(caller, tg, kernel.ReadFSCreds).Result()
		}},
		{"ids", kernel.Mutation{Skip: kernel.SkipIDs}, other, func(tg *kernel.Task) string {
			return w.PtraceMayAccess(caller, tg, kernel.ReadFSCreds).Result()
		}},
		{"dumpable", kernel.Mutation{Skip: kernel.SkipDumpable}, nodump, func(tg *kernel.Task) string {
			return w.PtraceMayAccess(caller, tg, kernel.ReadFSCreds).Result()
		}},
		{"commoncap", kernel.Mutation{Skip: kernel.SkipCommoncap}, capped, func(tg *kernel.Task) string {
			return w.PtraceMayAccess(caller, tg, kernel.ReadFSCreds).Result()
		}},
		{"swap creds", kernel.Mutation{SwapCreds: true}, capTarget, func(tg *kernel.Task) string {
			return w.PtraceMayAccess(caller, tg, kernel.ReadRealCreds).Result()
		}},
		{"entry mode", kernel.Mutation{Entry: func() *kernel.Entry { e := *stat; e.Mode = kernel.ReadRealCreds; return &e }()}, capTarget, func(tg *kernel.Task) string {
			return w.CheckEntry(caller, tg, stat).Result()
		}},
		{"entry perm", kernel.Mutation{Entry: func() *kernel.Entry { e := *stat; e.Perm = 0o440; return &e }()}, other, func(tg *kernel.Task) string {
			return w.CheckEntry(caller, tg, stat).Result()
		}},
		{"entry errno", kernel.Mutation{Entry: func() *kernel.Entry { e := *exe; e.Errno = kernel.EPERM; return &e }()}, other, func(tg *kernel.Task) string {
			return w.CheckEntry(caller, tg, exe).Result()
		}},
	} {
		before := tc.check(tc.target)
		w.Mutation = tc.m
		during := tc.check(tc.target)
		w.Mutation = kernel.Mutation{}
		after := tc.check(tc.target)
		if during == before || after != before {
			t.Errorf("%s: %s, with the mutation %s, after %s; want a change and back", tc.name, before, during, after)
		}
	}
}
