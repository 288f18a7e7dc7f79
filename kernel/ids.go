package kernel

// KUID is a user id as the initial user namespace sees it (kuid_t). All
// ids in a [World] are global: comparisons in kernel/ptrace.c use kuid_eq
// and kgid_eq, never ids relative to a namespace.
type KUID uint32

// KGID is a group id as the initial user namespace sees it (kgid_t).
type KGID uint32

// InvalidUID is the kernel's INVALID_UID; an id that has no mapping.
const InvalidUID KUID = ^KUID(0)

// InvalidGID is the kernel's INVALID_GID.
const InvalidGID KGID = ^KGID(0)
