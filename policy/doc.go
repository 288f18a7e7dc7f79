// Package policy is the procgate policy language: who may read which
// /proc/<pid>/ items of which processes, and who may attach to them.
//
// A policy is text, one statement per line or block, with # comments:
//
//	subject node_exporter { uid prometheus; exe /usr/bin/node_exporter; }
//	target  any_proc      { }
//	target  sshd          { exe /usr/sbin/sshd; }
//	allow   node_exporter any_proc : read { status stat io fd_count };
//	allow   debuggers any_proc : attach when same_uid;
//	protect sshd : attach;
//	neverallow * sshd : attach;
//
// Classes are built from selectors (uid, gid, group, type, label,
// apparmor, exe, cgroup, container, cap, each optionally negated with not):
// values of one key are ORed, different keys ANDed. Rules are allow,
// deny, auditallow, dontaudit, protect (the target refuses) and
// neverallow (an assertion checked at load). The semantics are SELinux's:
// default deny, deny and protect beat allow, order does not matter, audit
// bits apart from access bits. Read-class and attach-class items ([Item])
// follow the kernel's own classification, and a read rule that names an
// attach-class item does not load. A rule matches a non-dumpable target
// only when it says `when nondumpable`.
//
// # Compiling and deciding
//
// [Parse] turns text into a [File] with positioned errors; [Compile]
// resolves names on this machine (a missing user, group or executable
// matches nothing and is reported by [Policy.Warnings]), proves every
// neverallow and builds the index: classes are interned as bitsets, each
// class has a bitset of the rules that name it, each rule an item mask.
// [Policy.Decide] classifies the two processes, computes the relational
// facts and looks the triple up in an AVC-like cache of item vectors; a
// miss ORs the rule bitsets of the classes, ANDs subject and target sides
// and folds the survivors into the vector. [Policy.Explain] answers the
// same question by walking every rule and says which rules decided.
//
// The language reference is docs/policy.md.
package policy
