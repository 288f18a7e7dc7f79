package oracle

import "github.com/procgate/procgate/kernel"

// ProbeResult is the kernel's answer to one probe.
type ProbeResult struct {
	Probe Probe `json:"probe"`
	// Result is "ok" or the errno name, e.g. "EACCES".
	Result string `json:"result"`
	// Masked is set for ProbeStat when the address fields of
	// /proc/PID/stat were masked (do_task_stat without permission).
	Masked bool `json:"masked,omitempty"`
	// Detail carries extra facts: the stat fields, the step that failed
	// ("pidfd_open", "open", "read", …) or a cleanup problem.
	Detail string `json:"detail,omitempty"`
}

// OK reports whether the kernel allowed the operation.
func (p ProbeResult) OK() bool { return p.Result == "ok" }

// Observed is what the kernel holds for a spawned process, as seen from the
// initial user namespace (ids are kuids).
type Observed struct {
	Pid int `json:"pid"`
	// Tid is the probed thread for RelThread, or the prober's probing thread.
	Tid int `json:"tid,omitempty"`
	// UID and GID are real, effective, saved and fs ids from
	// /proc/PID/status.
	UID        [4]uint32 `json:"uid"`
	GID        [4]uint32 `json:"gid"`
	Groups     []uint32  `json:"groups"`
	CapEff     uint64    `json:"cap_eff"`
	CapPrm     uint64    `json:"cap_prm"`
	NoNewPrivs bool      `json:"no_new_privs"`
	// Dumpable is PR_GET_DUMPABLE as reported by the process itself.
	Dumpable int `json:"dumpable"`
	// UserNS is readlink /proc/PID/ns/user, e.g. "user:[4026531837]".
	UserNS string `json:"userns"`
	// InitNS reports whether UserNS is the orchestrator's (initial) one.
	InitNS bool `json:"init_ns"`
	// NSOwner is the kuid owning UserNS (NS_GET_OWNER_UID).
	NSOwner uint32 `json:"ns_owner"`
	// Landlocked reports whether the process runs in a Landlock domain
	// (inherited from a launcher thread or its own).
	Landlocked bool `json:"landlocked"`
	// AppArmor is /proc/PID/attr/apparmor/current, e.g. "unconfined" or
	// "name (enforce)"; empty when AppArmor is not active.
	AppArmor string `json:"apparmor,omitempty"`
	// SELinux is /proc/PID/attr/current where SELinux is active, e.g.
	// "system_u:system_r:pg_a_t"; empty otherwise.
	SELinux string `json:"selinux,omitempty"`
	// Exe is the executable (stat of /proc/PID/exe, its device as the
	// kernel's dev_t), nil when it could not be read: what a BPF LSM
	// program reads as mm->exe_file.
	Exe *kernel.FileID `json:"exe,omitempty"`
	// Cgroup is the cgroup v2 path from the root, each directory with
	// its id; nil when it could not be read: what a BPF LSM program reads
	// as task->cgroups->dfl_cgrp.
	Cgroup []kernel.CgroupNode `json:"cgroup,omitempty"`
	// PIDNS is the inode of the process's pid namespace (its ns/pid
	// link); 0 when it could not be read.
	PIDNS uint32 `json:"pidns,omitempty"`
	// Serial numbers the process among those its Runner spawned, from
	// 1: unlike a pid, which a later process may reuse, it names one
	// process for the Runner's life. Zero where no Runner spawned it
	// (an Observed decoded from a log).
	Serial uint64 `json:"-"`
}

// Result is the outcome of one Case.
type Result struct {
	// Index is the case's position in the slice given to Run.
	Index  int      `json:"index"`
	Name   string   `json:"name,omitempty"`
	Target Observed `json:"target"`
	Prober Observed `json:"prober"`
	// Probes are the answers in the order of Case.Probes.
	Probes []ProbeResult `json:"probes"`
	// Err is set when the case was refused (invalid spec, spawn failure,
	// credentials that differ from the request, …); Probes is then empty.
	Err error `json:"-"`
	// Error is Err's text, for JSON.
	Error string `json:"error,omitempty"`
}

// Probe returns the answer to probe p, and false when p was not run.
func (r *Result) Probe(p Probe) (ProbeResult, bool) {
	for _, x := range r.Probes {
		if x.Probe == p {
			return x, true
		}
	}
	return ProbeResult{}, false
}

func (r *Result) fail(err error) {
	r.Err = err
	r.Error = err.Error()
	r.Probes = nil
}
