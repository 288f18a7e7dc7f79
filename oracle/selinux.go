package oracle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// validSELinuxContext reports whether ctx can be written to attr/exec: empty
// (no transition) or a full context user:role:type[:level] without white
// space or control characters.
func validSELinuxContext(ctx string) error {
	if ctx == "" {
		return nil
	}
	if strings.ContainsFunc(ctx, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("selinux context %q: a context without spaces or control characters is required", ctx)
	}
	f := strings.Split(ctx, ":")
	if len(f) < 3 || slices.Contains(f[:3], "") {
		return fmt.Errorf("selinux context %q: want user:role:type[:level]", ctx)
	}
	return nil
}

// selinuxMatches reports whether attr/current (got) shows the requested
// context (want). An empty want asks for nothing and matches anything.
func selinuxMatches(want, got string) bool {
	return want == "" || strings.TrimSpace(strings.TrimRight(got, "\x00")) == want
}

// SELinuxType returns the type field of a context ("" for an empty or
// malformed one).
func SELinuxType(ctx string) string {
	f := strings.Split(ctx, ":")
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// --- the VM's SELinux policy ---

// seModelClasses are the classes the model's policy subset knows
// (package kernel/lsm/selinux); rules over other classes stay in the
// compiled policy only.
var seModelClasses = []string{"file", "dir", "lnk_file", "process", "capability", "capability2", "cap_userns", "cap2_userns"}

// seRule is one access-vector rule of the VM policy.
type seRule struct {
	kind, src, tgt string
	classes        []string
	perms          string
}

func (r seRule) render(classes []string) string {
	cl := classes[0]
	if len(classes) > 1 {
		cl = "{ " + strings.Join(classes, " ") + " }"
	}
	return fmt.Sprintf("%s %s %s:%s %s;", r.kind, r.src, r.tgt, cl, r.perms)
}

// seProcessPerms are the process permissions the policy declares, in the
// kernel's order (security/selinux/include/classmap.h).
var seProcessPerms = []string{
	"fork", "transition", "sigchld", "sigkill", "sigstop", "signull", "signal", "ptrace",
	"getsched", "setsched", "getsession", "getpgid", "setpgid", "getcap", "setcap", "share",
	"getattr", "setexec", "setfscreate", "noatsecure", "siginh", "setrlimit", "rlimitinh",
	"dyntransition", "setcurrent", "execmem", "execstack", "execheap", "setkeycreate",
	"setsockcreate", "getrlimit",
}

// seCapPerms are the capability class permissions (bit n = capability n).
var seCapPerms = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap",
}

func without(perms []string, drop string) string {
	var keep []string
	for _, p := range perms {
		if p != drop {
			keep = append(keep, p)
		}
	}
	return "{ " + strings.Join(keep, " ") + " }"
}

// VMSELinuxDomains are the test domains of the VM's SELinux policy. Each
// grants (as a source) a different combination of what the ptrace paths
// ask for: file read (READ mode), process ptrace (ATTACH mode), dir
// search/read and lnk_file read on the /proc/PID inodes (which carry the
// task's SID), and capability sys_ptrace.
var VMSELinuxDomains = []string{
	"pg_none_t",   // nothing on other domains (neverallow ptrace)
	"pg_read_t",   // file read, dir, lnk_file; ptrace on itself only; sys_ptrace
	"pg_trace_t",  // process ptrace, dir, lnk_file; no file read
	"pg_rt_t",     // everything; sys_ptrace
	"pg_novfs_t",  // file read and ptrace, but no dir search/read or lnk_file read
	"pg_nolnk_t",  // file read, ptrace, dir; no lnk_file read
	"pg_search_t", // file read, ptrace, dir search, lnk_file; no dir read
	"pg_sel_t",    // by target: read on attribute pg_tgt_a, ptrace on {domain -pg_none_t -pg_sel_t}
	"pg_perm_t",   // permissive domain, granted nothing
	"pg_audit_t",  // auditallow/dontaudit on file read (still denied), auditallowed ptrace
}

// seUnconfined is the domain of PID 1 (the kernel's initial SID), in which
// the orchestrator runs; cases may run processes in it too.
const seUnconfined = "kernel_t"

// seDecls declares the types and attributes (shared by the model and the
// compiled policy).
func seDecls() []string {
	lines := []string{
		"attribute domain;",
		"attribute pg_tgt_a;",
		"type kernel_t, domain;",
		"type security_t;",
		"type unlabeled_t;",
		"type file_t;",
		"type fs_t;",
	}
	for _, d := range VMSELinuxDomains {
		lines = append(lines, fmt.Sprintf("type %s, domain;", d))
	}
	lines = append(lines,
		"typeattribute pg_read_t pg_tgt_a;",
		"typeattribute pg_rt_t pg_tgt_a;",
		"typeattribute pg_audit_t pg_tgt_a;",
		"permissive pg_perm_t;",
	)
	return lines
}

// seRules are the policy's access-vector rules: the infrastructure every
// process needs (entering its domain from kernel_t by an exec transition,
// pipes, signals, /proc and the file systems, its own capabilities except
// sys_ptrace) and the varied grants between the test domains.
func seRules() []seRule {
	objs := "{ file_t unlabeled_t fs_t security_t }"
	fileClasses := []string{"file", "dir", "lnk_file", "chr_file", "blk_file", "sock_file", "fifo_file"}
	r := []seRule{
		// Infrastructure.
		{"allow", "domain", objs, fileClasses, "*"},
		{"allow", "domain", objs, []string{"filesystem"}, "*"},
		{"allow", "{ file_t unlabeled_t fs_t security_t }", "{ file_t unlabeled_t fs_t }", []string{"filesystem"}, "associate"},
		{"allow", "domain", "self", []string{"file", "dir", "lnk_file"}, "*"},
		{"allow", "domain", "self", []string{"fd"}, "use"},
		// Pipes carry their creator's SID (fs_use_task pipefs).
		{"allow", "domain", "domain", []string{"fifo_file"}, "*"},
		{"allow", "domain", "kernel_t", []string{"fd"}, "use"},
		{"allow", "domain", "self", []string{"process"}, without(seProcessPerms, "ptrace")},
		{"allow", "domain", "self", []string{"capability"}, without(seCapPerms, "sys_ptrace")},
		{"allow", "domain", "self", []string{"capability2"}, "*"},
		{"allow", "domain", "domain", []string{"process"}, "{ sigchld sigkill sigstop signull signal }"},
		// What every domain may do to the /proc/PID inodes of every
		// other, besides the varied permissions.
		{"allow", "domain", "domain", []string{"file"}, "{ open getattr ioctl lock map }"},
		{"allow", "domain", "domain", []string{"dir"}, "{ open getattr }"},
		{"allow", "domain", "domain", []string{"lnk_file"}, "getattr"},
		// kernel_t (PID 1, the orchestrator): everything.
		{"allow", "kernel_t", "domain", []string{"process"}, "*"},
		{"allow", "kernel_t", "domain", []string{"file", "dir", "lnk_file"}, "*"},
		{"allow", "kernel_t", "domain", []string{"fd"}, "use"},
		{"allow", "kernel_t", "self", []string{"capability"}, "sys_ptrace"},
		{"allow", "kernel_t", "security_t", []string{"security"}, "*"},

		// Varied grants (source → target test domains).
		{"allow", "pg_read_t", "domain", []string{"file", "lnk_file"}, "read"},
		{"allow", "pg_read_t", "domain", []string{"dir"}, "{ search read }"},
		{"allow", "pg_read_t", "self", []string{"process"}, "ptrace"},
		{"allow", "pg_read_t", "self", []string{"capability"}, "sys_ptrace"},

		{"allow", "pg_trace_t", "domain", []string{"process"}, "ptrace"},
		{"allow", "pg_trace_t", "domain", []string{"dir"}, "{ search read }"},
		{"allow", "pg_trace_t", "domain", []string{"lnk_file"}, "read"},

		{"allow", "pg_rt_t", "domain", []string{"file", "lnk_file"}, "read"},
		{"allow", "pg_rt_t", "domain", []string{"dir"}, "{ search read }"},
		{"allow", "pg_rt_t", "domain", []string{"process"}, "ptrace"},
		{"allow", "pg_rt_t", "self", []string{"capability"}, "sys_ptrace"},

		{"allow", "pg_novfs_t", "domain", []string{"file"}, "read"},
		{"allow", "pg_novfs_t", "domain", []string{"process"}, "ptrace"},

		{"allow", "pg_nolnk_t", "domain", []string{"file"}, "read"},
		{"allow", "pg_nolnk_t", "domain", []string{"process"}, "ptrace"},
		{"allow", "pg_nolnk_t", "domain", []string{"dir"}, "{ search read }"},

		{"allow", "pg_search_t", "domain", []string{"file", "lnk_file"}, "read"},
		{"allow", "pg_search_t", "domain", []string{"process"}, "ptrace"},
		{"allow", "pg_search_t", "domain", []string{"dir"}, "search"},

		{"allow", "pg_sel_t", "pg_tgt_a", []string{"file", "lnk_file"}, "read"},
		{"allow", "pg_sel_t", "pg_tgt_a", []string{"dir"}, "read"},
		{"allow", "pg_sel_t", "{ domain -pg_none_t }", []string{"dir"}, "search"},
		{"allow", "pg_sel_t", "{ domain -pg_none_t -pg_sel_t }", []string{"process"}, "ptrace"},

		{"allow", "pg_audit_t", "domain", []string{"dir"}, "{ search read }"},
		{"allow", "pg_audit_t", "domain", []string{"lnk_file"}, "read"},
		{"allow", "pg_audit_t", "domain", []string{"process"}, "ptrace"},
		{"auditallow", "pg_audit_t", "domain", []string{"process"}, "ptrace"},
		{"auditallow", "pg_audit_t", "domain", []string{"file"}, "read"},
		{"dontaudit", "pg_audit_t", "domain", []string{"file"}, "read"},
		{"dontaudit", "pg_none_t", "domain", []string{"process"}, "ptrace"},

		{"neverallow", "pg_none_t", "domain", []string{"process"}, "ptrace"},
		{"neverallow", "pg_perm_t", "~pg_perm_t", []string{"process"}, "ptrace"},
	}
	return r
}

// VMSELinuxModel returns the type-enforcement part of the VM policy in the
// model's subset (package kernel/lsm/selinux): every declaration and every
// rule over the classes the model knows. Rules over other classes (fd,
// filesystem, security, chr_file, …) are infrastructure and only in
// [VMSELinuxPolicyConf].
func VMSELinuxModel() string {
	var b strings.Builder
	b.WriteString("# procgate verify-vm SELinux policy: the part the model reads.\n")
	for _, l := range seDecls() {
		b.WriteString(l + "\n")
	}
	for _, r := range seRules() {
		var cl []string
		for _, c := range r.classes {
			if slices.Contains(seModelClasses, c) {
				cl = append(cl, c)
			}
		}
		if len(cl) == 0 {
			continue
		}
		b.WriteString(r.render(cl) + "\n")
	}
	return b.String()
}

// seClassDecls are the classes the compiled policy declares, with their
// permissions. The kernel maps classes and permissions by name; the policy
// is compiled with handle_unknown allow (checkpolicy -U allow), so
// undeclared classes (fifo_file, sockets, …) and permissions are allowed.
func seClassDecls() []string {
	common := "ioctl read write create getattr setattr lock relabelfrom relabelto append map unlink link rename execute quotaon mounton audit_access open execmod watch"
	return []string{
		"class security { load_policy setenforce compute_av check_context }",
		"class process { " + strings.Join(seProcessPerms, " ") + " }",
		"class file { " + common + " execute_no_trans entrypoint }",
		"class dir { " + common + " add_name remove_name reparent search rmdir }",
		"class lnk_file { " + common + " }",
		"class chr_file { " + common + " }",
		"class blk_file { " + common + " }",
		"class sock_file { " + common + " }",
		"class fifo_file { " + common + " }",
		"class fd { use }",
		"class capability { " + strings.Join(seCapPerms, " ") + " }",
		"class capability2 { mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf checkpoint_restore }",
		"class filesystem { mount remount unmount getattr relabelfrom relabelto associate quotamod quotaget watch }",
		"class system { ipc_info syslog_read syslog_mod syslog_console module_request module_load }",
	}
}

// seInitialSIDs are the kernel's initial SIDs in order
// (security/selinux/include/initial_sid_to_string.h, 6.1).
var seInitialSIDs = []string{
	"kernel", "security", "unlabeled", "fs", "file", "file_labels", "init", "any_socket",
	"port", "netif", "netmsg", "node", "igmp_packet", "icmp_socket", "tcp_socket",
	"sysctl_modprobe", "sysctl", "sysctl_fs", "sysctl_kernel", "sysctl_net",
	"sysctl_net_unix", "sysctl_vm", "sysctl_dev", "kmod", "policy", "scmp_packet", "devnull",
}

// VMSELinuxPolicyConf returns the whole VM policy as a non-MLS
// policy.conf for checkpolicy (-c 33 -U allow): classes, initial SIDs,
// the types and rules of [VMSELinuxModel] plus the infrastructure rules,
// one role and one user, the SID contexts and file-system labelling.
func VMSELinuxPolicyConf() string {
	var b strings.Builder
	b.WriteString("# procgate verify-vm SELinux policy (checkpolicy -c 33 -U allow).\n")
	for _, c := range seClassDecls() {
		name := strings.Fields(c)[1]
		fmt.Fprintf(&b, "class %s\n", name)
	}
	b.WriteString("\n")
	for _, s := range seInitialSIDs {
		fmt.Fprintf(&b, "sid %s\n", s)
	}
	b.WriteString("\n")
	for _, c := range seClassDecls() {
		b.WriteString(c + "\n")
	}
	b.WriteString("\n")
	for _, l := range seDecls() {
		b.WriteString(l + "\n")
	}
	for _, r := range seRules() {
		b.WriteString(r.render(r.classes) + "\n")
	}
	doms := append([]string{seUnconfined}, VMSELinuxDomains...)
	fmt.Fprintf(&b, "\nrole system_r;\nrole system_r types { %s };\n", strings.Join(doms, " "))
	b.WriteString("user system_u roles { system_r };\n\n")
	b.WriteString(`sid kernel system_u:system_r:kernel_t
sid security system_u:object_r:security_t
sid unlabeled system_u:object_r:unlabeled_t
sid fs system_u:object_r:fs_t
sid file system_u:object_r:file_t
sid devnull system_u:object_r:file_t

fs_use_task pipefs system_u:object_r:fs_t;
genfscon rootfs / system_u:object_r:file_t
genfscon proc / system_u:object_r:file_t
genfscon sysfs / system_u:object_r:file_t
genfscon selinuxfs / system_u:object_r:security_t
genfscon devtmpfs / system_u:object_r:file_t
genfscon tmpfs / system_u:object_r:file_t
genfscon securityfs / system_u:object_r:file_t
`)
	return b.String()
}

// SELinuxContext returns the context of a VM test domain.
func SELinuxContext(domain string) string { return "system_u:system_r:" + domain }

// labelled returns c running in domain.
func labelled(c Creds, domain string) Creds {
	c.SELinux = SELinuxContext(domain)
	return c
}

// vmSELinuxCases pairs the test domains (and kernel_t) as prober and
// target: every pair for a same-uid prober (DAC and commoncap pass, SELinux
// decides), CAP_SYS_PTRACE against another uid and root with every
// capability (SELinux's capability checks), CAP_DAC_READ_SEARCH alone and
// CAP_DAC_OVERRIDE alone against another uid (SELinux's capability check
// of each DAC override, which a root prober cannot isolate: the first one
// granted ends generic_permission), and self.
func vmSELinuxCases() []Case {
	labels := append([]string{seUnconfined}, VMSELinuxDomains...)
	user, other := User(1000, 1000), User(2000, 2000)
	sp, drs, dov := CapMask(CapSysPtrace), CapMask(CapDacReadSearch), CapMask(CapDacOverride)
	capTracers := []string{"pg_rt_t", "pg_read_t", "pg_trace_t", "pg_none_t", "pg_perm_t"}
	dacTracers := []string{"pg_rt_t", "pg_read_t"}
	groups := []labelGroup{
		{"same-uid", user, user, labels, labels},
		{"sys_ptrace-vs-uid", other.WithCaps(sp, sp), user, capTracers, []string{"pg_none_t", "pg_rt_t"}},
		{"root-vs-uid", Root(FullCaps()), user, capTracers, []string{"pg_none_t", "pg_rt_t"}},
		{"dac_read_search-vs-uid", other.WithCaps(drs, drs), user, dacTracers, []string{"pg_none_t", "pg_rt_t"}},
		{"dac_override-vs-uid", other.WithCaps(dov, dov), user, dacTracers, []string{"pg_none_t", "pg_rt_t"}},
	}
	return labelPairs("selinux", groups, user, []string{"pg_none_t", "pg_novfs_t"}, labelled, func(d string) string { return d })
}

// vmSELinuxPermissiveCases run with SELinux globally permissive: every
// denial of the enforcing step becomes a grant.
func vmSELinuxPermissiveCases() []Case {
	user := User(1000, 1000)
	var cases []Case
	for _, tr := range []string{"pg_none_t", "pg_trace_t", "pg_novfs_t", "pg_audit_t"} {
		for _, te := range []string{"pg_none_t", "pg_rt_t"} {
			cases = append(cases, Case{
				Name:   fmt.Sprintf("selinux permissive: %s -> %s", tr, te),
				Prober: labelled(user, tr),
				Target: labelled(user, te),
			})
		}
	}
	return cases
}

// SELinux modes for VMStep.SELinuxMode and VMRes.SELinuxMode.
const (
	SELinuxEnforcing  = "enforcing"
	SELinuxPermissive = "permissive"
)

// VMSELinuxPlan is the plan of the SELinux boot: the compiled policy
// (binary, from [VMSELinuxPolicyConf]) loaded by init, the domain pairs in
// enforcing mode, then a few in permissive mode. Yama is at scope 0.
func VMSELinuxPlan(policy []byte) VMPlan {
	return VMPlan{
		Workers:       2,
		SELinuxPolicy: policy,
		SELinuxModel:  VMSELinuxModel(),
		Steps: []VMStep{
			{Name: "selinux", YamaScope: 0, SELinuxMode: SELinuxEnforcing, Cases: vmSELinuxCases()},
			{Name: "selinux-permissive", YamaScope: 0, SELinuxMode: SELinuxPermissive, Cases: vmSELinuxPermissiveCases()},
		},
	}
}

// errNoSELinux is returned when a case asks for an SELinux context where
// SELinux is not active.
var errNoSELinux = errors.New("SELinux is not active (no /sys/fs/selinux)")
