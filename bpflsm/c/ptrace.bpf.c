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
#define MAX_CGROUPS 8
#define CGROUP_NAME 64 // a selected cgroup's name is at most 62 bytes: see read_cgroups

// Selector kinds, in the order of ruleset.pos and ruleset.neg.
enum { KIND_UID, KIND_GID, KIND_GROUP, KIND_EXE, KIND_CGROUP, KIND_PIDNS, KIND_CAP, NKINDS };

struct idrange {
	__u32 lo, hi;
	__u64 pos, neg; // classes whose positive / negative clause holds the range
};

struct exe {
	__u64 dev, ino; // the kernel's s_dev (MAJOR << 20 | MINOR) and i_ino
	__u64 pos, neg;
};

// A cgroup selector: the cgroup v2 named name whose parent has the id
// parent (the parent is resolved when the rule set is loaded; the
// cgroup itself is matched by name, so that it may come and go, as a
// service's does when it restarts), at level (1 for a child of the
// root). CG_SELF selects that cgroup, CG_BELOW its descendants; CG_ROOT
// every cgroup (the policy's "/**").
enum { CG_SELF = 1, CG_BELOW = 2, CG_ROOT = 4 };

struct cgroupsel {
	__u64 parent;
	__u32 level, flags;
	char name[CGROUP_NAME]; // NUL-padded
	__u64 pos, neg;
};

struct capsel {
	__u64 caps, pos, neg;
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
	__u32 ncgroup;
	__u32 cgroup_top; // the highest level of a cgroup selector
	struct cgroupsel cgroup[MAX_CGROUPS];
	// pidns are pid namespaces by inode (lo == hi): the policy's
	// container selectors.
	__u32 npidns, pad1;
	struct idrange pidns[MAX_RANGES];
	// caps are capability sets: a clause holds when the task's
	// permitted set has one of them (the policy's cap selector).
	__u32 ncap, pad2;
	struct capsel cap[MAX_RANGES];
	// deny[a][s] is the target classes subject class s may not reach with
	// access a (0 read, 1 attach); protect[a] the target classes nobody
	// may reach with it.
	__u64 deny[2][MAX_CLASSES];
	__u64 protect[2];
	// subjects[a] are the classes with a row of deny[a]: a subject in
	// none skips the rows.
	__u64 subjects[2];
	// exempt_cgroup is the cgroup (v2 id) whose processes the rules do
	// not restrict (procgate's own reader); 0 for none.
	__u64 exempt_cgroup;
	__u64 generation;
	// epoch numbers the loads of rule sets (the loader's, one per load):
	// the hashed rules of epoch e are in slot e & 1 of pairsets.
	__u64 epoch;
	// pair_kinds holds bit HK_PAIR(s, t) for each pair of kinds the
	// hashed rules (struct pair) use: the lookups to make.
	__u32 pair_kinds;
	__u32 pad;
};

// Hashed rules: a rule whose subject is every process or a class of one
// value (uid N, gid N, exe F) and whose target is a class of one value
// is an entry of a hash map keyed by the two values, not a pair of
// class bits: a rule set holds up to MAX_PAIRS of them, looked up in
// constant time, besides its MAX_CLASSES classes.
enum { HK_UID, HK_GID, HK_EXE, HK_ANY, NHKINDS };
#define HK_PAIR(s, t) (1u << ((s) * 4 + (t)))
#define MAX_PAIRS 65536

// The pairs of kinds with a subject's key, and those with an executable's.
#define SUBJECT_KINDS (HK_PAIR(HK_UID, HK_UID) | HK_PAIR(HK_UID, HK_GID) | HK_PAIR(HK_UID, HK_EXE) | \
		       HK_PAIR(HK_GID, HK_UID) | HK_PAIR(HK_GID, HK_GID) | HK_PAIR(HK_GID, HK_EXE) | \
		       HK_PAIR(HK_EXE, HK_UID) | HK_PAIR(HK_EXE, HK_GID) | HK_PAIR(HK_EXE, HK_EXE))
#define EXE_KINDS (HK_PAIR(HK_UID, HK_EXE) | HK_PAIR(HK_GID, HK_EXE) | HK_PAIR(HK_EXE, HK_EXE) | HK_PAIR(HK_ANY, HK_EXE) | \
		   HK_PAIR(HK_EXE, HK_UID) | HK_PAIR(HK_EXE, HK_GID))

struct pair_key {
	__u8 skind, tkind; // HK_*; skind HK_ANY: every subject (protect)
	__u16 pad16;
	__u32 pad32;
	__u64 s[2], t[2]; // uid or gid in [0]; an executable's dev and ino
};

// pair_val names, per access (0 read, 1 attach), the rule: its index in
// the rule set plus one, 0 for none. The entry with both kinds 0xff holds
// the epoch of the rule set it belongs to (rule[0] low, rule[1] high 32
// bits), for readers in user space.
struct pair_val {
	__u32 rule[2];
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

struct pairs_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PAIRS + 1);
	__type(key, struct pair_key);
	__type(value, struct pair_val);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pairs_proto SEC(".maps");

// The hashed rules of epoch e are in slot e & 1: a reload fills the slot
// the rule set in force does not use, then swaps the rule set.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct pairs_inner);
} pairsets SEC(".maps");

// Counters: 0 decisions, 1 denials, 2 hooks without a rule set, 3
// denials whose event the ring buffer had no room for, 4 denials because
// the hashed rules' slot was empty, 5 denials because a preempted
// decision's scratch was taken (see owner), 6 denials because the rule
// set has cgroup selectors the kernel's struct cgroup cannot serve.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 7);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// A denial, as procgate enforce writes it into the audit log: the two
// processes, the access, and the classes each belongs to, from which
// procgate enforce names the rule that denied (the first protect rule of
// a target class, else the first subject class's rule: RuleSet.Decide).
// subject_classes is 0 when a protect rule denied (the subject's classes
// were not needed); rule names a hashed rule (its index plus one), 0 for
// a rule of classes. Mirrored by bpflsm.Denial.
struct denial {
	__u64 generation;
	__u32 pid, tgid;   // the subject: the caller (the parent at traceme)
	__u32 tpid, ttgid; // the target
	__u32 uid, tuid;   // their effective uids
	__u8 access;       // 0 read, 1 attach
	__u8 traceme;      // 1: at ptrace_traceme
	__u16 pad16;
	__u32 rule;
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

// ids is what the rules read of a task.
struct ids {
	__u32 euid, egid;
	__s64 ngroups;
	__u32 groups[MAX_GROUPS];
	__u64 dev, ino; // the executable; both 0 without one (or unread)
	__u64 cgroups;  // bit i: the task's cgroup is one ruleset.cgroup[i] selects
	__u64 pidns;    // the inode of the task's pid namespace; 0 unread
	__u64 capprm;   // the task's permitted capabilities (cred->cap_permitted)
};

// cglevels is read_cgroups' scratch: the ids and names of a task's
// ancestors by level (the root's, level 0, are 1 and "": not read).
#define CG_LEVELS 16
struct cgname {
	__u64 w[CGROUP_NAME / 8];
};

struct cglevels {
	__u64 id[CG_LEVELS];
	struct cgname name[CG_LEVELS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cglevels);
} cglevels SEC(".maps");

// has_ancestors says whether the kernel's struct cgroup has ancestors[]
// (6.0), which read_cgroups indexes by level: a CO-RE relocation the
// loader resolves. Before, bpflsm refuses rule sets with cgroup
// selectors, and the program denies under one (fail closed).
#define has_ancestors() bpf_core_field_exists(((struct cgroup *)0)->ancestors)

// read_cgroups sets x->cgroups: which of rs's cgroup selectors hold t's
// cgroup v2. For selector e at level L, the task's ancestor at L (its own
// cgroup when its level is L) must be named e->name and its ancestor at
// L-1 must be e->parent. It reads each level's id and name once, up to
// the highest level a selector names (rs->cgroup_top, below CG_LEVELS),
// then compares every selector without a read: branch-free over every
// entry (unused ones select nothing: no classes); what it reads past the
// task's own level the level masks out. Names are compared over
// CGROUP_NAME bytes: a name of 63 bytes or more reads as its first 63
// and a NUL, never equal to a selector's name of at most 62.
static __always_inline void read_cgroups(const struct ruleset *rs, struct task_struct *t, struct ids *x, int btf)
{
	__u32 k0 = 0;
	struct cglevels *lv = bpf_map_lookup_elem(&cglevels, &k0);
	if (!lv)
		return;
	if (!has_ancestors())
		return;
	struct cgroup *cg;
	__s64 level;
	if (btf) {
		// No branch: a load through a NULL BTF pointer yields 0.
		cg = t->cgroups->dfl_cgrp;
		level = cg->level;
	} else {
		cg = BPF_CORE_READ(t, cgroups, dfl_cgrp);
		level = BPF_CORE_READ(cg, level);
	}
	__u64 base = (__u64)cg + bpf_core_field_offset(struct cgroup, ancestors);
	__u64 have = ~zero((__u64)cg); // all ones when the task has a cgroup
	__u32 top = rs->cgroup_top;
	lv->id[0] = 1;
	__builtin_memset(&lv->name[0], 0, sizeof(lv->name[0]));
#pragma unroll
	for (int l = 1; l < CG_LEVELS; l++) {
		if (l <= top) {
			// Probe reads: the verifier refuses BTF loads past a
			// struct's end, where ancestors[1…] are.
			struct cgroup *a = NULL;
			bpf_probe_read_kernel(&a, sizeof(a), (void *)(base + l * 8));
			struct kernfs_node *kn = BPF_CORE_READ(a, kn);
			lv->id[l] = BPF_CORE_READ(kn, id);
			__builtin_memset(&lv->name[l], 0, sizeof(lv->name[l]));
			bpf_probe_read_kernel_str(lv->name[l].w, CGROUP_NAME, BPF_CORE_READ(kn, name));
		}
	}
#pragma unroll
	for (int i = 0; i < MAX_CGROUPS; i++) {
		const struct cgroupsel *e = &rs->cgroup[i];
		__u64 L = e->level & (CG_LEVELS - 1);
		const __u64 *want = (const __u64 *)e->name;
		const __u64 *got = lv->name[L].w;
		__u64 diff = lv->id[(L - 1) & (CG_LEVELS - 1)] ^ e->parent;
#pragma unroll
		for (int w = 0; w < CGROUP_NAME / 8; w++)
			diff |= got[w] ^ want[w];
		__u64 self = -(__u64)((e->flags & CG_SELF) != 0) & zero((__u64)level ^ L);
		__u64 below = -(__u64)((e->flags & CG_BELOW) != 0) & (__u64)(((__s64)L - level) >> 63);
		__u64 root = -(__u64)((e->flags & CG_ROOT) != 0);
		__u64 hit = ((zero(diff) & (self | below)) | root) & have;
		x->cgroups |= hit & (1ULL << i);
	}
}

// read_pidns sets x->pidns: the inode of t's pid namespace, the one its
// pid belongs to last (task_active_pid_ns: thread_pid->numbers[level].ns).
// Probe reads: numbers[] is indexed by the pid's level.
static __always_inline void read_pidns(struct task_struct *t, struct ids *x)
{
	struct pid *pid = BPF_CORE_READ(t, thread_pid);
	__u64 level = BPF_CORE_READ(pid, level) & 31; // MAX_PID_NS_LEVEL 32
	__u64 at = (__u64)pid + bpf_core_field_offset(struct pid, numbers) + level * bpf_core_type_size(struct upid) +
		   bpf_core_field_offset(struct upid, ns);
	struct pid_namespace *ns = NULL;
	bpf_probe_read_kernel(&ns, sizeof(ns), (void *)at);
	x->pidns = BPF_CORE_READ(ns, ns.inum);
}

// read_ids reads t's ids: its groups, executable, cgroup, pid namespace
// and capabilities only when a rule of rs reads them. With btf, t is a BTF pointer (a hook's argument, or
// bpf_get_current_task_btf from 5.11) and the fields are loaded
// directly; otherwise t is a plain address (bpf_get_current_task before
// 5.11) and each is a probe read (BPF_CORE_READ), several times dearer.
static __always_inline void read_ids(const struct ruleset *rs, struct task_struct *t, struct ids *x, int btf)
{
	// What to read is asked of rs at each test, not held in variables:
	// a variable known zero on one path and not on the other keeps the
	// verifier's states apart for the rest of the program.
	if (rs->ncgroup)
		read_cgroups(rs, t, x, btf);
	if (rs->npidns)
		read_pidns(t, x);
	if (rs->ncap) {
		// A probe read of the 64 bits: kernel_cap_t is a u64 from 6.3,
		// two u32 before (the same bits on a little-endian machine).
		const struct cred *c = BPF_CORE_READ(t, cred);
		bpf_core_read(&x->capprm, sizeof(x->capprm), &c->cap_permitted);
	}
	if (btf) {
		const struct cred *c = t->cred;
		x->euid = c->euid.val;
		x->egid = c->egid.val;
		if (rs->ngroup) {
			struct group_info *gi = c->group_info;
			x->ngroups = gi->ngroups;
			bpf_core_read(x->groups, sizeof(x->groups), &gi->gid[0]);
		}
		if (rs->nexe || (rs->pair_kinds & EXE_KINDS)) {
			// No branch: a load through a NULL BTF pointer (no mm,
			// no exe_file) yields 0, as a probe read does.
			struct inode *ino = t->mm->exe_file->f_inode;
			x->dev = ino->i_sb->s_dev;
			x->ino = ino->i_ino;
		}
		return;
	}
	const struct cred *c = BPF_CORE_READ(t, cred);
	x->euid = BPF_CORE_READ(c, euid.val);
	x->egid = BPF_CORE_READ(c, egid.val);
	if (rs->ngroup) {
		struct group_info *gi = BPF_CORE_READ(c, group_info);
		x->ngroups = BPF_CORE_READ(gi, ngroups);
		// One probe read of the first MAX_GROUPS entries (past
		// ngroups it reads what follows, which cannot fault and is
		// masked out).
		bpf_core_read(x->groups, sizeof(x->groups), &gi->gid[0]);
	}
	if (rs->nexe || (rs->pair_kinds & EXE_KINDS)) {
		// A probe read through NULL (no mm, no exe_file) yields 0.
		struct inode *ino = BPF_CORE_READ(t, mm, exe_file, f_inode);
		x->dev = BPF_CORE_READ(ino, i_sb, s_dev);
		x->ino = BPF_CORE_READ(ino, i_ino);
	}
}

// task_ids holds the two tasks' ids while a hook decides (0 the
// subject's, 1 the target's): in a map value, not on the stack, so that
// the verifier does not tell paths apart by what was read.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct ids);
} task_ids SEC(".maps");

// owner is the task whose decision uses this CPU's task_ids and accs
// (bpf_get_current_pid_tgid). A hook runs with migration disabled, not
// preemption: a task preempted in the middle of a decision can find its
// scratch taken by another's. Each decision marks the scratch its own
// and, before it allows, checks the mark is still its own; else it
// denies (counter 5): a decision never rests on another's data.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} owner SEC(".maps");

// scratch_ids returns the two zeroed entries of task_ids, marked the
// current task's.
static __always_inline int scratch_ids(struct ids **s, struct ids **t)
{
	__u32 k0 = 0, k1 = 1;
	__u64 *own = bpf_map_lookup_elem(&owner, &k0);
	*s = bpf_map_lookup_elem(&task_ids, &k0);
	*t = bpf_map_lookup_elem(&task_ids, &k1);
	if (!own || !*s || !*t)
		return -1;
	*own = bpf_get_current_pid_tgid();
	__builtin_memset(*s, 0, sizeof(**s));
	__builtin_memset(*t, 0, sizeof(**t));
	return 0;
}

// still_mine reports whether this CPU's scratch is still the current
// task's (see owner).
static __always_inline int still_mine(void)
{
	__u32 k0 = 0;
	__u64 *own = bpf_map_lookup_elem(&owner, &k0);
	if (own && *own == bpf_get_current_pid_tgid())
		return 1;
	count(5);
	return 0;
}

// acc is classes_of's accumulators: in a map value, not on the stack,
// so that the verifier does not tell paths apart by them.
struct acc {
	__u64 pos[NKINDS], neg[NKINDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct acc);
} accs SEC(".maps");

static __always_inline __u64 classes_of(const struct ruleset *rs, const struct ids *x)
{
	__u32 k0 = 0;
	struct acc *ac = bpf_map_lookup_elem(&accs, &k0);
	if (!ac)
		return ~0ULL; // cannot happen: every class, so that rules apply (fail closed)
	// Stores, not a loop: a loop that closes on a helper call's next
	// instruction is refused before 6.x ("back-edge").
	__builtin_memset(ac, 0, sizeof(*ac));
	__u64 *pos = ac->pos, *neg = ac->neg;

	if (!rs->classes)
		return 0; // every rule is hashed
	if (rs->nuid)
		match_ranges(rs->uid, x->euid, ~0ULL, &pos[KIND_UID], &neg[KIND_UID]);
	if (rs->ngid)
		match_ranges(rs->gid, x->egid, ~0ULL, &pos[KIND_GID], &neg[KIND_GID]);
	if (rs->ngroup) {
		match_ranges(rs->group, x->egid, ~0ULL, &pos[KIND_GROUP], &neg[KIND_GROUP]);
		for (int i = 0; i < MAX_GROUPS; i++) {
			__u64 valid = (__u64)(((__s64)i - x->ngroups) >> 63);
			match_ranges(rs->group, x->groups[i], valid, &pos[KIND_GROUP], &neg[KIND_GROUP]);
		}
	}
	if (rs->nexe && (x->dev | x->ino)) {
		// Unrolled: clang closes this loop with a fallthrough, which
		// verifiers before 6.x refuse ("back-edge").
#pragma unroll
		for (int i = 0; i < MAX_EXES; i++) {
			__u64 hit = zero((rs->exe[i].dev ^ x->dev) | (rs->exe[i].ino ^ x->ino));
			pos[KIND_EXE] |= rs->exe[i].pos & hit;
			neg[KIND_EXE] |= rs->exe[i].neg & hit;
		}
	}
	if (rs->npidns)
		match_ranges(rs->pidns, x->pidns, ~zero(x->pidns), &pos[KIND_PIDNS], &neg[KIND_PIDNS]);
	if (rs->ncap) {
#pragma unroll
		for (int i = 0; i < MAX_RANGES; i++) {
			__u64 hit = ~zero(x->capprm & rs->cap[i].caps);
			pos[KIND_CAP] |= rs->cap[i].pos & hit;
			neg[KIND_CAP] |= rs->cap[i].neg & hit;
		}
	}
	if (rs->ncgroup) {
#pragma unroll
		for (int i = 0; i < MAX_CGROUPS; i++) {
			__u64 hit = -((x->cgroups >> i) & 1);
			pos[KIND_CGROUP] |= rs->cgroup[i].pos & hit;
			neg[KIND_CGROUP] |= rs->cgroup[i].neg & hit;
		}
	}
	__u64 m = rs->classes;
	for (int k = 0; k < NKINDS; k++)
		m &= (~rs->pos[k] | pos[k]) & ~neg[k];
	return m;
}

// pair_side fills one side of a hashed rule's key with x's value of kind k.
static __always_inline void pair_side(__u64 v[2], int k, const struct ids *x)
{
	v[0] = k == HK_UID ? x->euid : k == HK_GID ? x->egid : k == HK_EXE ? x->dev : 0;
	v[1] = k == HK_EXE ? x->ino : 0;
}

// pair_rule looks up the hashed rule of subject kind sk and target kind
// tk for access a: the rule's index plus one, or 0.
static __always_inline __u32 pair_rule(void *pairs, int sk, int tk, const struct ids *s, const struct ids *t, int a)
{
	struct pair_key k = {.skind = sk, .tkind = tk};
	pair_side(k.s, sk, s);
	pair_side(k.t, tk, t);
	if (tk == HK_EXE && !(t->dev | t->ino))
		return 0; // no executable: no exe class holds the target
	if (sk == HK_EXE && !(s->dev | s->ino))
		return 0;
	struct pair_val *v = bpf_map_lookup_elem(pairs, &k);
	return v ? v->rule[a & 1] : 0;
}

// pairs_of returns the hashed rules of rs's epoch. Their slot is not
// written while a hook that may hold rs runs: a reload fills the slot of
// its own epoch, whose rule set is two epochs old, and waits, after each
// swap, for an RCU grace period (membarrier MEMBARRIER_CMD_GLOBAL), which
// ends every hook that saw the rule set swapped out (the BPF LSM runs
// its programs under rcu_read_lock). NULL only if the slot is empty.
static __always_inline void *pairs_of(const struct ruleset *rs)
{
	__u32 slot = rs->epoch & 1;
	return bpf_map_lookup_elem(&pairsets, &slot);
}

// deny counts a denial and hands it to procgate enforce (not for given
// ids: the benchmark's).
static __always_inline int deny(const struct ruleset *rs, struct task_struct *subject, struct task_struct *target,
				const struct ids *t, int a, int traceme, __u64 subj, __u64 tgt, __u32 rule, int given)
{
	count(1);
	if (given)
		return -EPERM;
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
	e->tuid = t->euid;
	e->access = a;
	e->traceme = traceme;
	e->pad16 = 0;
	e->rule = rule;
	e->subject_classes = subj;
	e->target_classes = tgt;
	BPF_CORE_READ_STR_INTO(&e->comm, subject, comm);
	BPF_CORE_READ_STR_INTO(&e->tcomm, target, comm);
	bpf_ringbuf_submit(e, 0);
	return -EPERM;
}

// TRY looks up the hashed rule of kinds sk and tk unless one was found.
#define TRY(sk, tk) \
	if (!rule && (rs->pair_kinds & HK_PAIR(sk, tk))) \
		rule = pair_rule(pairs, sk, tk, s, t, a)

// judge answers whether the subject may reach the target with access a
// (0 read, 1 attach) under rs: 0, or -EPERM where a rule refuses. The
// order (kernel/lsm/bpf: RuleSet.Decide): protect rules of classes,
// hashed protect rules, deny rules of classes, hashed deny rules. With
// given, s and t hold the two's ids (the benchmark); otherwise they are
// read from the tasks (through BTF pointers with sbtf and tbtf: see
// read_ids), the subject's only when a rule needs them.
static __always_inline int judge(const struct ruleset *rs, struct task_struct *subject, struct task_struct *target,
				 struct ids *s, struct ids *t, int a, int traceme, int given, int sbtf, int tbtf)
{
	if (rs->ncgroup && !has_ancestors()) {
		count(6);
		return deny(rs, subject, target, t, a, traceme, 0, 0, 0, given); // bpflsm never loads it (fail closed)
	}
	if (!given)
		read_ids(rs, target, t, tbtf);
	__u64 tgt = classes_of(rs, t);
	if (tgt & rs->protect[a])
		return deny(rs, subject, target, t, a, traceme, 0, tgt, 0, given);
	void *pairs = NULL;
	__u32 rule = 0;
	if (rs->pair_kinds) {
		pairs = pairs_of(rs);
		if (!pairs) {
			count(4);
			return deny(rs, subject, target, t, a, traceme, 0, tgt, 0, given);
		}
		TRY(HK_ANY, HK_UID);
		TRY(HK_ANY, HK_GID);
		TRY(HK_ANY, HK_EXE);
		if (rule)
			return deny(rs, subject, target, t, a, traceme, 0, tgt, rule, given);
	}
	if (!tgt && !(rs->pair_kinds & SUBJECT_KINDS))
		goto allow;
	if (!given)
		read_ids(rs, subject, s, sbtf);
	__u64 subj = classes_of(rs, s), denied = 0;
	const __u64 *row = rs->deny[a];
	if (subj & rs->subjects[a])
		for (int i = 0; i < MAX_CLASSES; i++)
			denied |= row[i] & -((subj >> i) & 1);
	if (denied & tgt)
		return deny(rs, subject, target, t, a, traceme, subj, tgt, 0, given);
	if (pairs && (rs->pair_kinds & SUBJECT_KINDS)) {
		TRY(HK_UID, HK_UID);
		TRY(HK_UID, HK_GID);
		TRY(HK_UID, HK_EXE);
		TRY(HK_GID, HK_UID);
		TRY(HK_GID, HK_GID);
		TRY(HK_GID, HK_EXE);
		TRY(HK_EXE, HK_UID);
		TRY(HK_EXE, HK_GID);
		TRY(HK_EXE, HK_EXE);
		if (rule)
			return deny(rs, subject, target, t, a, traceme, subj, tgt, rule, given);
	}
allow:
	if (given || still_mine())
		return 0;
	return -EPERM; // another decision used the scratch meanwhile
}

// ruleset_now returns the rule set in force, or NULL (counted).
static __always_inline const struct ruleset *ruleset_now(void)
{
	__u32 slot = 0;
	void *inner = bpf_map_lookup_elem(&rulesets, &slot);
	const struct ruleset *rs = inner ? bpf_map_lookup_elem(inner, &slot) : NULL;
	if (!rs)
		count(2);
	return rs;
}

// decide answers whether subject may reach target with the access mode
// asks (PTRACE_MODE_ATTACH or not): 0, or -EPERM where a rule refuses.
static __always_inline int decide(struct task_struct *subject, struct task_struct *target, unsigned int mode, int exempt,
				  int sbtf, int tbtf)
{
	const struct ruleset *rs = ruleset_now();
	if (!rs)
		return 0;
	count(0);
	if (exempt && rs->exempt_cgroup && bpf_get_current_cgroup_id() == rs->exempt_cgroup)
		return 0;
	struct ids *s, *t;
	if (scratch_ids(&s, &t))
		return -EPERM; // cannot happen (fail closed)
	return judge(rs, subject, target, s, t, (mode & PTRACE_MODE_ATTACH) ? 1 : 0, !exempt, 0, sbtf, tbtf);
}

// current_btf says whether the kernel has bpf_get_current_task_btf
// (5.11), whose BTF pointer lets the hook load the caller's fields
// directly instead of probe-reading them: a CO-RE relocation the loader
// resolves, so a kernel without the helper never sees its call (the
// verifier drops the branch not taken).
#define current_btf() bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

SEC("lsm/ptrace_access_check")
int BPF_PROG(procgate_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return ret;
	if (current_btf())
		return decide(bpf_get_current_task_btf(), child, mode, 1, 1, 1);
	return decide((struct task_struct *)bpf_get_current_task(), child, mode, 1, 0, 1);
}

// ptrace_traceme(parent): PTRACE_TRACEME makes the caller's parent its
// tracer, an attach by the parent (kernel/ptrace.c:ptrace_traceme).
SEC("lsm/ptrace_traceme")
int BPF_PROG(procgate_ptrace_traceme, struct task_struct *parent, int ret)
{
	if (ret)
		return ret;
	if (current_btf())
		return decide(parent, bpf_get_current_task_btf(), PTRACE_MODE_ATTACH, 0, 1, 1);
	return decide(parent, (struct task_struct *)bpf_get_current_task(), PTRACE_MODE_ATTACH, 0, 1, 0);
}

// bench_ids holds the subject's and the target's ids (0 and 1) and, in
// the subject's egid's place of entry 2, the access to judge: the
// benchmark's input (bpflsm's BenchmarkJudge), not the hooks'.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct ids);
} bench_ids SEC(".maps");

// bench_judge runs the hooks' decision on given ids, as a socket filter:
// a program type BPF_PROG_TEST_RUN times in a loop on kernels that refuse
// LSM programs. It returns 1 for a denial, 0 otherwise.
SEC("socket")
int bench_judge(struct __sk_buff *skb)
{
	__u32 k0 = 0, k1 = 1, k2 = 2;
	struct ids *s = bpf_map_lookup_elem(&bench_ids, &k0), *t = bpf_map_lookup_elem(&bench_ids, &k1);
	struct ids *m = bpf_map_lookup_elem(&bench_ids, &k2);
	const struct ruleset *rs = ruleset_now();
	if (!s || !t || !m || !rs)
		return 0;
	return judge(rs, NULL, NULL, s, t, m->euid & 1, 0, 1, 0, 0) ? 1 : 0;
}

// bench_out accumulates bench_hook's measurements: the nanoseconds its
// judgements took, those of as many empty intervals (the clock's own
// cost, to subtract), how many it made and how many denied.
struct bench_out {
	__u64 ns, empty, judged, denied;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_out);
} bench_out SEC(".maps");

// bench_hook_btf and bench_hook_probe time one of the hooks' decisions
// as they make it — the ids read from the tasks (the caller and its
// parent) through BTF pointers as from 5.11, or with the probe reads of
// 5.10 — under BPF_PROG_TEST_RUN of a raw tracepoint program: the
// benchmark's, never attached (bpflsm's BenchmarkHook). The access is
// bench_ids' entry 2's euid.
static __always_inline int bench_hook(int btf)
{
	__u32 k0 = 0, k2 = 2;
	struct bench_out *o = bpf_map_lookup_elem(&bench_out, &k0);
	struct ids *m = bpf_map_lookup_elem(&bench_ids, &k2);
	const struct ruleset *rs = ruleset_now();
	if (!o || !m || !rs)
		return 0;
	struct ids *s, *t;
	if (scratch_ids(&s, &t))
		return 0;
	int d;
	__u64 t0;
	if (btf) {
		struct task_struct *cur = bpf_get_current_task_btf();
		struct task_struct *parent = cur->real_parent;
		t0 = bpf_ktime_get_ns();
		d = judge(rs, cur, parent, s, t, m->euid & 1, 0, 0, 1, 1);
	} else {
		struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
		struct task_struct *parent = BPF_CORE_READ(cur, real_parent);
		t0 = bpf_ktime_get_ns();
		d = judge(rs, cur, parent, s, t, m->euid & 1, 0, 0, 0, 0);
	}
	__u64 t1 = bpf_ktime_get_ns();
	__u64 t2 = bpf_ktime_get_ns();
	o->ns += t1 - t0;
	o->empty += t2 - t1;
	o->judged++;
	if (d)
		o->denied++;
	return 0;
}

SEC("raw_tp")
int bench_hook_btf(void *ctx)
{
	return bench_hook(1);
}

SEC("raw_tp")
int bench_hook_probe(void *ctx)
{
	return bench_hook(0);
}
