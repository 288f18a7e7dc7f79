package policy

import (
	"math/rand/v2"
	"testing"
)

func TestTargetNeeds(t *testing.T) {
	const base = "subject s { uid alice; }\n"
	for _, tc := range []struct {
		name, src string
		want      Needs
	}{
		{"uid only", base + "target t { uid bob; }\nallow s t : read { status };", 0},
		{"default policy", string(DefaultSource), 0},
		{"exe", base + "target t { exe /usr/sbin/sshd; }\nallow s t : read { status };", NeedExe},
		{"not exe", base + "target t { not exe /usr/sbin/sshd; }\nallow s t : read { status };", NeedExe},
		{"exe in protect", base + "target t { exe /usr/sbin/sshd; }\nprotect t : attach;", NeedExe},
		{"cgroup", base + "target t { cgroup /user.slice/*; }\nallow s t : read { status };", NeedCgroup},
		{"container", base + "target t { container host; }\nallow s t : read { status };", NeedPIDNS},
		{"same_cgroup", base + "allow s * : read { status } when same_cgroup;", NeedCgroup},
		{"same_container default", base + "allow s * : read { status } when same_container;", NeedPIDNS | NeedCgroup},
		{"same_container pidns", "option same_container pidns;\n" + base + "allow s * : read { status } when same_container;", NeedPIDNS},
		{"same_container cgroup", "option same_container cgroup;\n" + base + "allow s * : read { status } when same_container;", NeedCgroup},
		{"subject exe only", "subject s { exe /usr/bin/lsof; }\nallow s * : read { status };", 0},
		{"same_uid", base + "allow s * : read { status } when same_uid;", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustLoad(t, tc.src).TargetNeeds(); got != tc.want {
				t.Errorf("TargetNeeds = %b, want %b", got, tc.want)
			}
		})
	}
}

// TestTargetNeedsSafe: leaving out a field the policy does not need
// never changes a decision, over random targets and the example-style
// policies above.
func TestTargetNeedsSafe(t *testing.T) {
	srcs := []string{
		string(DefaultSource),
		brokerPolicy,
		"subject s { uid alice; }\ntarget t { exe /usr/sbin/sshd; }\nallow s * : read { status io } when same_cgroup;\ndeny s t : read { io };",
		"option same_container pidns;\nsubject s { uid alice bob; }\ntarget c { container any; }\nallow s * : read { status } when same_container;\nprotect c : read { io };",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	exes := []Exe{{}, {1, 100, "/usr/bin/node_exporter"}, {1, 102, "/usr/sbin/sshd"}, {1, 103, "/usr/bin/gdb"}}
	cgs := []string{"", "/user.slice/u1000", "/kubepods.slice/pod1/c1.scope", "/system.slice/sshd.service"}
	nss := []uint64{0, hostNS, podNS}
	subjects := []*Subject{nodeExp, lsofPod, alice, bob}
	for _, src := range srcs {
		p := mustLoad(t, src)
		need := p.TargetNeeds()
		for range 2000 {
			tg := Target{Process: Process{
				PID: 30, UID: uint32(rng.IntN(3)) + 999, GID: uint32(rng.IntN(3)) + 999,
				Exe: exes[rng.IntN(len(exes))], Cgroup: cgs[rng.IntN(len(cgs))], PIDNS: nss[rng.IntN(len(nss))],
			}, Dumpable: rng.IntN(4) > 0}
			lean := tg
			if need&NeedExe == 0 {
				lean.Exe = Exe{}
			}
			if need&NeedCgroup == 0 {
				lean.Cgroup = ""
			}
			if need&NeedPIDNS == 0 {
				lean.PIDNS = 0
			}
			s := subjects[rng.IntN(len(subjects))]
			for it := range numItems {
				a, b := p.Decide(s, &tg, 0, it), p.Decide(s, &lean, 0, it)
				if a.Allowed != b.Allowed || a.Audit != b.Audit {
					t.Fatalf("policy %.40q: %s of %+v: full %+v, without unneeded fields %+v", src, it, tg, a, b)
				}
			}
		}
	}
}
