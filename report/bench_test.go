package report_test

// Benchmarks of procgate report (issue 14; figures in docs/benchmarks.md):
//
//   - BenchmarkBuild: report.Build on synthetic worlds, by processes
//     (300, 1,000, 3,000 at 50 principal classes) and by classes (10, 50,
//     200 at 3,000 processes), as a scenario (no unknowns asked) and as a
//     snapshot (live.System.Unknowns asked for every decision, as
//     `procgate report --snapshot` and the live report do);
//   - BenchmarkLive: the live machine grown to 3,000 processes (root):
//     live.Read alone, and live.Read + report.Build + every output format;
//   - BenchmarkFleet: snapshot files of 3,000 processes loaded and
//     reported as `procgate report --snapshot` does: 3 machines by
//     default, 100 with PROCGATE_BENCH_LARGE=1.
//
// benchstat compares the sub-benchmarks by their name's keys, e.g.
// `benchstat -col /input -row /procs b.txt`.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/report"
	"github.com/procgate/procgate/scenario"
)

// benchLargeEnv turns on the sizes too slow for `make bench-smoke`
// (-benchtime 1x over every package): the fleet of 100 machines.
const benchLargeEnv = "PROCGATE_BENCH_LARGE"

// benchProfile is one set of credentials a synthetic world's processes
// run with: one principal class each.
type benchProfile struct {
	kind     int
	comm     string
	cred     kernel.Cred
	dumpable kernel.Dumpable
	mmNS     *kernel.UserNS
	landlock *kernel.LandlockDomain
	// parentOf is the profile whose processes start this one's main
	// process (-1: init's children).
	parentOf int
	members  []*kernel.Task
}

// The kinds of profile after the two root ones, in the order they
// repeat: each login user is followed by a set-uid program it runs, each
// container's root by an unprivileged user of the same container.
const (
	benchKindService      = iota // a system service: its own uid, no capabilities
	benchKindServiceCap          // a service with one capability (net_bind_service)
	benchKindLogin               // a login user: uid ≥ 1000, supplementary groups
	benchKindSetuid              // a set-uid-root program the previous login user runs: non-dumpable
	benchKindContainer           // root of a rootless container: a user namespace owned by a user
	benchKindContainerApp        // an unprivileged user in the previous container
	benchKindSandboxed           // a service that made itself non-dumpable, in a Landlock domain
	benchNumKinds
)

var benchKindComm = [benchNumKinds]string{"svc", "netd", "bash", "sudo", "ctr-init", "ctr-app", "agent"}

// benchWorld builds a synthetic machine of procs processes whose
// principals fall in exactly classes classes (kernel threads and
// zombies, which ask nothing, are targets only): init and root
// services with every capability, a root service with a few, then
// services, login users with the set-uid programs they run, rootless
// containers and sandboxed non-dumpable services in turn. A tenth of the
// processes are kernel threads; the others are spread over the classes
// as a Zipf law (a few classes hold most processes, every class at least
// one), in parent trees two to four deep below init (login users below a
// root sshd, containers below a root conmon). One process is traced by
// its parent, one has a Yama exception, one shares its parent's address
// space (vfork), two are zombies. machine varies everything a fleet's
// machines differ in: the seed, Yama's scope, fs.suid_dumpable, users'
// uids.
func benchWorld(procs, classes, machine int) *kernel.World {
	rng := rand.New(rand.NewPCG(uint64(machine)+1, uint64(procs)<<20|uint64(classes)))
	w := kernel.NewWorld(kernel.DefaultRelease)
	scope := 1
	switch machine % 10 {
	case 3:
		scope = 0
	case 7:
		scope = 2
	}
	y, _ := yama.New(scope)
	w.LSMs = []kernel.LSM{capability.New(), landlock.New(6), y}
	w.SuidDumpable = 2
	if machine%4 == 1 {
		w.SuidDumpable = 0
	}
	shift := uint32(machine % 5) // users' uids differ between machines

	root := kernel.Cred{UserNS: w.Init, CapEffective: kernel.CapSetAll, CapPermitted: kernel.CapSetAll}
	profiles := make([]*benchProfile, classes)
	for i := range profiles {
		p := &benchProfile{kind: -1, comm: "systemd", cred: root, dumpable: kernel.SuidDumpUser, mmNS: w.Init, parentOf: -1}
		if i > 0 {
			p.comm = "rootd"
		}
		ids := func(uid, gid uint32) {
			p.cred.UID, p.cred.EUID, p.cred.SUID, p.cred.FSUID = kernel.KUID(uid), kernel.KUID(uid), kernel.KUID(uid), kernel.KUID(uid)
			p.cred.GID, p.cred.EGID, p.cred.SGID, p.cred.FSGID = kernel.KGID(gid), kernel.KGID(gid), kernel.KGID(gid), kernel.KGID(gid)
			p.cred.CapEffective, p.cred.CapPermitted = 0, 0
		}
		if i == 1 {
			// A root service with a bounded capability set.
			caps := kernel.CapsOf(kernel.CapNetAdmin, kernel.CapNetBindService, kernel.CapNetRaw)
			p.cred.CapEffective, p.cred.CapPermitted, p.comm = caps, caps, "networkd"
		}
		if i >= 2 {
			p.kind = (i - 2) % benchNumKinds
			p.comm = benchKindComm[p.kind] + strconv.Itoa(i)
			svc, user := uint32(100+i), 1000+uint32(i)+shift
			switch p.kind {
			case benchKindService:
				ids(svc, svc)
			case benchKindServiceCap:
				ids(svc, svc)
				caps := kernel.CapsOf(kernel.CapNetBindService)
				p.cred.CapEffective, p.cred.CapPermitted = caps, caps
			case benchKindLogin:
				ids(user, user)
				p.cred.Groups = []kernel.KGID{kernel.KGID(user), 24, 27, 100}
				p.parentOf = 0
			case benchKindSetuid:
				login := profiles[i-1].cred
				ids(uint32(login.UID), uint32(login.GID))
				p.cred.Groups = login.Groups
				p.cred.EUID, p.cred.SUID, p.cred.FSUID = 0, 0, 0
				p.cred.CapEffective, p.cred.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
				p.dumpable = kernel.Dumpable(w.SuidDumpable)
				p.parentOf = i - 1
			case benchKindContainer:
				base := 100000 + uint32(i)*65536
				ns := &kernel.UserNS{Name: "ctr" + strconv.Itoa(i), Parent: w.Init, Level: 1,
					Owner: kernel.KUID(user), Group: kernel.KGID(user),
					UIDMap: []kernel.IDExtent{{Inside: 0, Outside: base, Count: 65536}},
					GIDMap: []kernel.IDExtent{{Inside: 0, Outside: base, Count: 65536}}}
				w.Namespaces = append(w.Namespaces, ns)
				ids(base, base)
				p.cred.UserNS, p.mmNS = ns, ns
				p.cred.CapEffective, p.cred.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
				p.parentOf = 0
			case benchKindContainerApp:
				ctr := profiles[i-1]
				app := uint32(ctr.cred.UID) + 33
				ids(app, app)
				p.cred.UserNS, p.mmNS = ctr.cred.UserNS, ctr.cred.UserNS
				p.parentOf = i - 1
			case benchKindSandboxed:
				ids(svc, svc)
				p.dumpable = kernel.SuidDumpDisable
				p.landlock = &kernel.LandlockDomain{Name: p.comm}
			}
		}
		profiles[i] = p
	}

	pid := 0
	nextPID := func() int {
		if pid == 0 {
			pid = 1
			return pid
		}
		pid += 1 + rng.IntN(3)
		return pid
	}
	add := func(t *kernel.Task) *kernel.Task {
		t.Name = live.TaskName(t.Comm, t.PID)
		t.TGID, t.Leader = t.PID, t
		w.AddTask(t)
		return t
	}
	spawn := func(p *benchProfile, parent *kernel.Task) *kernel.Task {
		t := &kernel.Task{PID: nextPID(), Comm: p.comm, Parent: parent, Cred: p.cred, Landlock: p.landlock,
			MM: &kernel.MM{Dumpable: p.dumpable, UserNS: p.mmNS}}
		p.members = append(p.members, add(t))
		return t
	}

	// Kernel threads: kthreadd and its children.
	kthreads := max(procs/10, 1)
	zombies := 0
	if procs >= 100 {
		zombies = 2
	}
	initTask := spawn(profiles[0], nil) // pid 1
	kthreadd := add(&kernel.Task{PID: nextPID(), Comm: "kthreadd", Cred: root, Kthread: true})
	for i := 1; i < kthreads; i++ {
		add(&kernel.Task{PID: nextPID(), Comm: "kworker/" + strconv.Itoa(i), Parent: kthreadd, Cred: root, Kthread: true})
	}

	// How many processes each profile holds: one each, the rest as a
	// Zipf law over the profiles in a per-machine order.
	rest := procs - kthreads - zombies - classes
	if rest < 0 {
		panic(fmt.Sprintf("benchWorld: %d processes cannot hold %d classes", procs, classes))
	}
	share := make([]int, classes)
	for i := range share {
		share[i] = 1
	}
	order := rng.Perm(classes)
	var weights []float64
	sum := 0.0
	for r := range order {
		weights = append(weights, 1/float64(r+1))
		sum += 1 / float64(r+1)
	}
	given := 0
	for r, i := range order {
		n := int(float64(rest) * weights[r] / sum)
		share[i] += n
		given += n
	}
	share[order[0]] += rest - given

	// Main processes in profile order, then the other members in a
	// shuffled order, each below its profile's main process (workers)
	// or below another member (deeper trees).
	for i, p := range profiles {
		if i == 0 {
			continue
		}
		parent := initTask
		if p.parentOf >= 0 {
			pp := profiles[p.parentOf]
			parent = pp.members[rng.IntN(len(pp.members))]
		}
		spawn(p, parent)
	}
	var slots []int
	for i, n := range share {
		for range n - 1 {
			slots = append(slots, i)
		}
	}
	rng.Shuffle(len(slots), func(a, b int) { slots[a], slots[b] = slots[b], slots[a] })
	for _, i := range slots {
		p := profiles[i]
		parent := p.members[0]
		if i == 0 {
			parent = initTask
		}
		if rng.IntN(10) >= 6 {
			parent = p.members[rng.IntN(len(p.members))]
		}
		spawn(p, parent)
	}
	for range zombies {
		p := profiles[rng.IntN(classes)]
		add(&kernel.Task{PID: nextPID(), Comm: "defunct", Parent: p.members[0], Cred: p.cred, State: kernel.Zombie})
	}

	// One traced process (a debugger and its child), one Yama exception,
	// one vfork child sharing its parent's address space: among the
	// members whose parent is of the same profile.
	var sameParent []*kernel.Task
	for _, p := range profiles {
		for _, t := range p.members[1:] {
			if t.Parent != nil && t.Parent != initTask && t.Parent.Cred.UID == t.Cred.UID && t.Parent.Cred.UserNS == t.Cred.UserNS {
				sameParent = append(sameParent, t)
			}
		}
	}
	if len(sameParent) >= 3 {
		rng.Shuffle(len(sameParent), func(a, b int) { sameParent[a], sameParent[b] = sameParent[b], sameParent[a] })
		sameParent[0].Tracer = sameParent[0].Parent
		sameParent[1].Ptracer = &kernel.PtracerException{Tracer: sameParent[1].Parent}
		sameParent[2].MM = sameParent[2].Parent.MM
	}
	return w
}

// benchCPU returns the CPU time this process has used, user and system,
// every thread (the garbage collector's included): on a machine shared
// with other jobs it varies less than the wall time.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSizes are the worlds BenchmarkBuild reports on: processes at 50
// classes, and classes at 3,000 processes.
var benchSizes = []struct{ procs, classes int }{
	{300, 50}, {1000, 50}, {3000, 50}, {3000, 10}, {3000, 200},
}

// benchReportShape reports a machine's size as benchmark metrics.
func benchReportShape(b *testing.B, m *report.Machine) {
	related, relEdges := 0, 0
	for _, e := range m.Edges {
		if e.Relation != report.Unrelated {
			related += e.Pairs
			relEdges++
		}
	}
	b.ReportMetric(float64(m.Processes), "procs")
	b.ReportMetric(float64(len(m.Principals)), "p-classes")
	b.ReportMetric(float64(len(m.Targets)), "t-classes")
	b.ReportMetric(float64(len(m.Edges)), "edges")
	b.ReportMetric(float64(relEdges), "related-edges")
	b.ReportMetric(float64(related), "related-pairs")
}

// BenchmarkBuild reports on synthetic worlds. input=scenario asks no
// unknowns (a scenario's world is complete); input=snapshot asks
// live.System.Unknowns for every decision, as the live report and
// `procgate report --snapshot` do: the difference is the unknowns' cost.
func BenchmarkBuild(b *testing.B) {
	for _, input := range []string{"scenario", "snapshot"} {
		for _, sz := range benchSizes {
			b.Run(fmt.Sprintf("input=%s/procs=%d/classes=%d", input, sz.procs, sz.classes), func(b *testing.B) {
				w := benchWorld(sz.procs, sz.classes, 0)
				if err := w.Validate(); err != nil {
					b.Fatal(err)
				}
				in := report.Input{Name: "bench", Source: input, World: w}
				if input == "snapshot" {
					in.Live = &live.System{World: w}
				}
				var m *report.Machine
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				cpu := benchCPU()
				for b.Loop() {
					var err error
					if m, err = report.Build(in, report.Options{}); err != nil {
						b.Fatal(err)
					}
				}
				cpu = benchCPU() - cpu
				runtime.ReadMemStats(&ms1)
				b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
				benchReportShape(b, m)
			})
		}
	}
}

// benchFormats writes r in every output format and returns the bytes
// written. The HTML page is skipped while WriteHTML is a stub.
func benchFormats(b *testing.B, r *report.Report) int {
	n := 0
	for _, f := range []struct {
		name  string
		write func(io.Writer, *report.Report) error
	}{{"text", report.WriteText}, {"json", report.WriteJSON}, {"dot", report.WriteDOT},
		{"openmetrics", report.WriteOpenMetrics}, {"html", report.WriteHTML}} {
		var buf bytes.Buffer
		if err := f.write(&buf, r); err != nil {
			if f.name == "html" && strings.Contains(err.Error(), "not written yet") {
				continue
			}
			b.Fatalf("-o %s: %v", f.name, err)
		}
		n += buf.Len()
	}
	return n
}

// benchPool starts sleeping processes until the machine runs want
// processes, under a few users and groups, and stops and reaps them when
// b ends, also when it fails. Each dies with the test binary
// (Pdeathsig) should the cleanup not run.
func benchPool(b *testing.B, want int) {
	b.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		b.Skip("no sleep binary:", err)
	}
	var cmds []*exec.Cmd
	b.Cleanup(func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	})
	creds := []*syscall.Credential{
		nil, // root, every capability
		{Uid: 1001, Gid: 1001},
		{Uid: 1002, Gid: 1002, Groups: []uint32{1002, 27}},
		{Uid: 1003, Gid: 100},
		{Uid: 1003, Gid: 1003, Groups: []uint32{4, 24, 27}},
		{Uid: 65534, Gid: 65534},
	}
	have, err := benchCountPIDs()
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; have+i < want; i++ {
		c := exec.Command(sleep, "3600")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: creds[i%len(creds)], Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			b.Fatalf("start sleeper %d: %v", i, err)
		}
		cmds = append(cmds, c)
		if time.Now().After(deadline) {
			b.Fatalf("starting %d sleepers took more than 2 minutes", i+1)
		}
	}
}

func benchCountPIDs() (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n, nil
}

// BenchmarkLive reports on this machine grown to 3,000 processes (root:
// the sleepers run under other users). step=read is live.Read alone,
// the baseline; step=report is what `procgate report` does: live.Read,
// the login users, report.Build, report.New and every output format.
func BenchmarkLive(b *testing.B) {
	testenv.RequireRoot(b, "start processes under other users and read every process")
	benchPool(b, 3000)
	opts := live.Options{MountSecurityFS: true}
	b.Run("step=read", func(b *testing.B) {
		var sys *live.System
		cpu := benchCPU()
		for b.Loop() {
			var err error
			if sys, err = live.Read(opts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric((benchCPU()-cpu).Seconds()*1e3/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(len(sys.World.Tasks)), "procs")
	})
	b.Run("step=report", func(b *testing.B) {
		var m *report.Machine
		var read, build, write time.Duration
		var out int
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu := benchCPU()
		for b.Loop() {
			t0 := time.Now()
			sys, err := live.Read(opts)
			if err != nil {
				b.Fatal(err)
			}
			logins, err := report.ReadLogins("/etc/passwd", "/etc/group")
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			m, err = report.Build(report.Input{Name: "live", Source: "live", World: sys.World, Live: sys, Logins: logins}, report.Options{})
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			out = benchFormats(b, report.New([]*report.Machine{m}, t2))
			read, build, write = read+t1.Sub(t0), build+t2.Sub(t1), write+time.Since(t2)
		}
		cpu = benchCPU() - cpu
		runtime.ReadMemStats(&ms1)
		n := float64(b.N)
		b.ReportMetric(cpu.Seconds()*1e3/n, "cpu-ms/op")
		b.ReportMetric(read.Seconds()*1e3/n, "ms-read/op")
		b.ReportMetric(build.Seconds()*1e3/n, "ms-build/op")
		b.ReportMetric(write.Seconds()*1e3/n, "ms-write/op")
		b.ReportMetric(float64(out)/(1<<20), "MiB-out")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/n/(1<<20), "MiB-alloc/op")
		b.ReportMetric(float64(ms1.Sys)/(1<<20), "MiB-sys")
		benchReportShape(b, m)
	})
}

// benchFleetFiles writes n snapshot files of 3,000 processes, one per
// synthetic machine (30 to 70 principal classes each, and every other
// variation of benchWorld), with the header comment procgate snapshot
// writes.
func benchFleetFiles(b *testing.B, dir string, n int) []string {
	b.Helper()
	var paths []string
	for i := range n {
		w := benchWorld(3000, 30+(i*7)%41, i)
		data, err := scenario.MarshalWithComment(w, nil, fmt.Sprintf("Synthetic snapshot %d for BenchmarkFleet.\nNot in this file, because user space cannot read them: Landlock domains\n(every task is written unsandboxed) and Yama PR_SET_PTRACER exceptions.", i))
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("node%03d.yaml", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// BenchmarkFleet reports on snapshot files of 3,000 processes as
// `procgate report --snapshot FILE... -o json` does: every file loaded,
// each machine built, the fleet merged, the JSON written. 3 machines
// (enough for `make bench-smoke`), and 100 with PROCGATE_BENCH_LARGE=1
// (a minute or less a run on 2 cores, and as long again to write the
// files).
func BenchmarkFleet(b *testing.B) {
	sizes := []int{3}
	if os.Getenv(benchLargeEnv) == "1" {
		sizes = append(sizes, 100)
	}
	dir := b.TempDir()
	all := benchFleetFiles(b, dir, sizes[len(sizes)-1])
	for _, n := range sizes {
		b.Run(fmt.Sprintf("machines=%d/procs=3000", n), func(b *testing.B) {
			paths := all[:n]
			var load, build, merge time.Duration
			var out int
			var r *report.Report
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			cpu := benchCPU()
			for b.Loop() {
				t0 := time.Now()
				var inputs []report.Input
				for _, p := range paths {
					s, err := scenario.LoadFile(p)
					if err != nil {
						b.Fatal(err)
					}
					inputs = append(inputs, report.Input{Name: filepath.Base(p), Source: "snapshot", World: s.World, Live: &live.System{World: s.World}})
				}
				t1 := time.Now()
				var machines []*report.Machine
				for _, in := range inputs {
					m, err := report.Build(in, report.Options{})
					if err != nil {
						b.Fatal(err)
					}
					machines = append(machines, m)
				}
				t2 := time.Now()
				r = report.New(machines, t2)
				var buf bytes.Buffer
				if err := report.WriteJSON(&buf, r); err != nil {
					b.Fatal(err)
				}
				out = buf.Len()
				load, build, merge = load+t1.Sub(t0), build+t2.Sub(t1), merge+time.Since(t2)
			}
			cpu = benchCPU() - cpu
			runtime.ReadMemStats(&ms1)
			nn := float64(b.N)
			b.ReportMetric(cpu.Seconds()/nn, "cpu-s/op")
			b.ReportMetric(load.Seconds()/nn, "s-load/op")
			b.ReportMetric(build.Seconds()/nn, "s-build/op")
			b.ReportMetric(merge.Seconds()/nn, "s-merge+json/op")
			b.ReportMetric(float64(out)/(1<<20), "MiB-json")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/nn/(1<<20), "MiB-alloc/op")
			b.ReportMetric(float64(ms1.Sys)/(1<<20), "MiB-sys")
			edges := 0
			for _, m := range r.Machines {
				edges += len(m.Edges)
			}
			b.ReportMetric(float64(edges)/float64(n), "edges/machine")
		})
	}
}
