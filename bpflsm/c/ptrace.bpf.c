// SPDX-License-Identifier: GPL-2.0
//
// ptrace.bpf.c — procgate's restrictions at the kernel's ptrace access
// hook. security/security.c:security_ptrace_access_check calls every
// module's ptrace_access_check(child, mode) in the lsm= order (the BPF LSM
// is usually last); a non-zero return is the errno __ptrace_may_access
// (kernel/ptrace.c) returns, so PTRACE_ATTACH/SEIZE fail with it, and every
// /proc read that asks ptrace_may_access (environ, maps, fd/, the
// exe/cwd/root links, io, stat's masked fields…) is refused as the
// kernel's own rules refuse it. /proc/PID/status asks nothing and stays
// readable.
//
// The rule set is one value of an inner array map behind an
// array-of-maps: a reload builds a new inner map and swaps it in with one
// update of the outer slot, so a hook sees either the old rule set or the
// new one, never a mix and never none. Its layout is struct ruleset
// below, mirrored by bpflsm.RuleSet in Go.
//
// Regenerate with `make bpf` (clang, bpf2go); the objects are committed.

#include "types.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1

// include/linux/ptrace.h
#define PTRACE_MODE_READ 0x01
#define PTRACE_MODE_ATTACH 0x02

#define MAX_CLASSES 64
#define MAX_RANGES 16
#define MAX_EXES 16
#define MAX_GROUPS 8

// Selector kinds, in the order of ruleset.pos and ruleset.neg.
enum { KIND_UID, KIND_GID, KIND_GROUP, KIND_EXE, NKINDS };

struct idrange {
	__u32 lo, hi;
	__u64 pos, neg; // classes whose positive / negative clause holds the range
};

struct exe {
	__u64 dev, ino; // the kernel's s_dev (MAJOR << 20 | MINOR) and i_ino
	__u64 pos, neg;
};

struct ruleset {
	__u64 classes;      // the classes in use
	__u64 pos[NKINDS];  // classes with a positive clause of each kind
	__u64 neg[NKINDS];  // classes with a negative clause of each kind
	__u32 nuid, ngid, ngroup, nexe;
	struct idrange uid[MAX_RANGES];
	struct idrange gid[MAX_RANGES];
	struct idrange group[MAX_RANGES];
	struct exe exe[MAX_EXES];
	// deny[a][s] is the target classes subject class s may not reach with
	// access a (0 read, 1 attach); protect[a] the target classes nobody
	// may reach with it.
	__u64 deny[2][MAX_CLASSES];
	__u64 protect[2];
	// exempt_cgroup is the cgroup (v2 id) whose processes the rules do
	// not restrict (procgate's own reader); 0 for none.
	__u64 exempt_cgroup;
	__u64 generation;
};

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ruleset);
} inner_proto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct inner);
} rulesets SEC(".maps");

// Counters: 0 decisions, 1 denials, 2 hooks without a rule set, 3
// denials whose event the ring buffer had no room for.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// A denial, as procgate enforce writes it into the audit log: the two
// processes, the access, and the classes each belongs to, from which
// procgate enforce names the rule that denied (the first protect rule of
// a target class, else the first subject class's rule: RuleSet.Decide).
// subject_classes is 0 when a protect rule denied (the subject's classes
// were not needed). Mirrored by bpflsm.Denial.
struct denial {
	__u64 generation;
	__u32 pid, tgid;   // the subject: the caller (the parent at traceme)
	__u32 tpid, ttgid; // the target
	__u32 uid, tuid;   // their effective uids
	__u8 access;       // 0 read, 1 attach
	__u8 traceme;      // 1: at ptrace_traceme
	__u16 pad16;
	__u32 pad32;
	__u64 subject_classes, target_classes;
	char comm[16], tcomm[16];
};
_Static_assert(sizeof(struct denial) == 88, "struct denial is 88 bytes (bpflsm.Denial's record)");

// Denials for procgate enforce to audit; one that finds it full is only
// counted (counter 3). 256 KiB hold 2,730 of them (88 bytes and an
// 8-byte header each).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} denials SEC(".maps");

static __always_inline void count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &i);
	if (c)
		*c += 1;
}

// The matching below has no branch inside its loops, which run a constant
// number of times (a comparison becomes a mask of all ones or zero, and
// unused entries hold no classes): the verifier walks one path through
// them, not one per outcome of each comparison.

// within returns all ones when lo <= id <= hi, else zero.
static __always_inline __u64 within(__u32 id, __u32 lo, __u32 hi)
{
	__s64 d = (__s64)id - (__s64)lo, w = (__s64)hi - (__s64)lo;
	return ~(__u64)((d | (w - d)) >> 63);
}

// zero returns all ones when x is zero, else zero.
static __always_inline __u64 zero(__u64 x)
{
	return ~(__u64)((__s64)(x | -x) >> 63);
}

static __always_inline void match_ranges(const struct idrange *r, __u32 id, __u64 valid, __u64 *pos, __u64 *neg)
{
	for (int i = 0; i < MAX_RANGES; i++) {
		__u64 hit = within(id, r[i].lo, r[i].hi) & valid;
		*pos |= r[i].pos & hit;
		*neg |= r[i].neg & hit;
	}
}

// classes_of returns the classes task t belongs to: a class holds a task
// when each of its positive clauses holds it and none of its negative
// ones (policy/compile.go: clause.match, with the effective ids as
// policy.Process has them; kernel/lsm/bpf: RuleSet.ClassesOf).
static __always_inline __u64 classes_of(const struct ruleset *rs, struct task_struct *t)
{
	__u64 pos[NKINDS] = {}, neg[NKINDS] = {};
	// Probe reads (BPF_CORE_READ), not loads through t: before 5.11 the
	// current task is a plain address (bpf_get_current_task), not a
	// BTF pointer.
	const struct cred *c = BPF_CORE_READ(t, cred);
	__u32 euid = BPF_CORE_READ(c, euid.val), egid = BPF_CORE_READ(c, egid.val);

	match_ranges(rs->uid, euid, ~0ULL, &pos[KIND_UID], &neg[KIND_UID]);
	match_ranges(rs->gid, egid, ~0ULL, &pos[KIND_GID], &neg[KIND_GID]);
	if (rs->ngroup) {
		match_ranges(rs->group, egid, ~0ULL, &pos[KIND_GROUP], &neg[KIND_GROUP]);
		struct group_info *gi = BPF_CORE_READ(c, group_info);
		__s64 ng = BPF_CORE_READ(gi, ngroups);
		// One probe read of the first MAX_GROUPS entries (past
		// ngroups it reads what follows, which cannot fault and is
		// masked out).
		__u32 gids[MAX_GROUPS] = {};
		bpf_core_read(gids, sizeof(gids), &gi->gid[0]);
		for (int i = 0; i < MAX_GROUPS; i++) {
			__u64 valid = (__u64)(((__s64)i - ng) >> 63);
			match_ranges(rs->group, gids[i], valid, &pos[KIND_GROUP], &neg[KIND_GROUP]);
		}
	}
	if (rs->nexe) {
		struct file *f = BPF_CORE_READ(t, mm, exe_file);
		if (f) {
			struct inode *ino = BPF_CORE_READ(f, f_inode);
			__u64 dev = BPF_CORE_READ(ino, i_sb, s_dev), i_ino = BPF_CORE_READ(ino, i_ino);
			for (int i = 0; i < MAX_EXES; i++) {
				__u64 hit = zero((rs->exe[i].dev ^ dev) | (rs->exe[i].ino ^ i_ino));
				pos[KIND_EXE] |= rs->exe[i].pos & hit;
				neg[KIND_EXE] |= rs->exe[i].neg & hit;
			}
		}
	}
	__u64 m = rs->classes;
	for (int k = 0; k < NKINDS; k++)
		m &= (~rs->pos[k] | pos[k]) & ~neg[k];
	return m;
}

// deny counts a denial and hands it to procgate enforce.
static __always_inline int deny(const struct ruleset *rs, struct task_struct *subject, struct task_struct *target,
				int a, int traceme, __u64 subj, __u64 tgt)
{
	count(1);
	struct denial *e = bpf_ringbuf_reserve(&denials, sizeof(*e), 0);
	if (!e) {
		count(3);
		return -EPERM;
	}
	e->generation = rs->generation;
	e->pid = BPF_CORE_READ(subject, pid);
	e->tgid = BPF_CORE_READ(subject, tgid);
	e->tpid = BPF_CORE_READ(target, pid);
	e->ttgid = BPF_CORE_READ(target, tgid);
	e->uid = BPF_CORE_READ(subject, cred, euid.val);
	e->tuid = BPF_CORE_READ(target, cred, euid.val);
	e->access = a;
	e->traceme = traceme;
	e->pad16 = 0;
	e->pad32 = 0;
	e->subject_classes = subj;
	e->target_classes = tgt;
	BPF_CORE_READ_STR_INTO(&e->comm, subject, comm);
	BPF_CORE_READ_STR_INTO(&e->tcomm, target, comm);
	bpf_ringbuf_submit(e, 0);
	return -EPERM;
}

// decide answers whether subject may reach target with the access mode
// asks (PTRACE_MODE_ATTACH or not): 0, or -EPERM where a rule refuses.
static __always_inline int decide(struct task_struct *subject, struct task_struct *target, unsigned int mode, int exempt)
{
	__u32 slot = 0;
	void *inner = bpf_map_lookup_elem(&rulesets, &slot);
	if (!inner) {
		count(2);
		return 0;
	}
	const struct ruleset *rs = bpf_map_lookup_elem(inner, &slot);
	if (!rs) {
		count(2);
		return 0;
	}
	count(0);
	if (exempt && rs->exempt_cgroup && bpf_get_current_cgroup_id() == rs->exempt_cgroup)
		return 0;
	int a = (mode & PTRACE_MODE_ATTACH) ? 1 : 0;
	__u64 tgt = classes_of(rs, target);
	if (!tgt)
		return 0;
	if (tgt & rs->protect[a])
		return deny(rs, subject, target, a, !exempt, 0, tgt);
	__u64 subj = classes_of(rs, subject), denied = 0;
	const __u64 *row = rs->deny[a];
	for (int s = 0; s < MAX_CLASSES; s++)
		denied |= row[s] & -((subj >> s) & 1);
	if (denied & tgt)
		return deny(rs, subject, target, a, !exempt, subj, tgt);
	return 0;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(procgate_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return ret;
	return decide((struct task_struct *)bpf_get_current_task(), child, mode, 1);
}

// ptrace_traceme(parent): PTRACE_TRACEME makes the caller's parent its
// tracer, an attach by the parent (kernel/ptrace.c:ptrace_traceme).
SEC("lsm/ptrace_traceme")
int BPF_PROG(procgate_ptrace_traceme, struct task_struct *parent, int ret)
{
	if (ret)
		return ret;
	return decide(parent, (struct task_struct *)bpf_get_current_task(), PTRACE_MODE_ATTACH, 0);
}
