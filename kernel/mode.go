package kernel

import (
	"fmt"
	"strings"
)

// Mode is the access mode passed to ptrace_may_access, as in
// include/linux/ptrace.h. A well-formed mode has exactly one of
// [ModeRead] and [ModeAttach] and exactly one of [ModeFSCreds] and
// [ModeRealCreds]; [ModeNoAudit] is optional. The kernel WARNs and denies
// when the creds selector is missing or doubled (see [World.PtraceMayAccess]),
// so such modes are representable but never allowed.
type Mode uint8

// The mode bits (include/linux/ptrace.h).
const (
	ModeRead      Mode = 0x01 // PTRACE_MODE_READ: inspect only
	ModeAttach    Mode = 0x02 // PTRACE_MODE_ATTACH: control
	ModeNoAudit   Mode = 0x04 // PTRACE_MODE_NOAUDIT: no audit for checks that honour it
	ModeFSCreds   Mode = 0x08 // PTRACE_MODE_FSCREDS: compare fsuid/fsgid, effective caps
	ModeRealCreds Mode = 0x10 // PTRACE_MODE_REALCREDS: compare real uid/gid, permitted caps
)

// The four combinations the kernel uses.
const (
	ReadFSCreds     = ModeRead | ModeFSCreds
	ReadRealCreds   = ModeRead | ModeRealCreds
	AttachFSCreds   = ModeAttach | ModeFSCreds
	AttachRealCreds = ModeAttach | ModeRealCreds
)

// IsRead reports whether the READ bit is set. Security modules that tell
// the two apart test this bit first, as the kernel does (an ill-formed mode
// with both bits counts as READ there).
func (m Mode) IsRead() bool { return m&ModeRead != 0 }

// IsAttach reports whether the mode asks for ATTACH (and not READ).
func (m Mode) IsAttach() bool { return m&ModeAttach != 0 }

// NoAudit reports whether PTRACE_MODE_NOAUDIT is set.
func (m Mode) NoAudit() bool { return m&ModeNoAudit != 0 }

// FSCreds reports whether the filesystem credentials are to be used.
func (m Mode) FSCreds() bool { return m&ModeFSCreds != 0 }

// CredsWellFormed reports whether exactly one creds selector is set
// (kernel/ptrace.c:__ptrace_may_access's WARN condition negated).
func (m Mode) CredsWellFormed() bool {
	return (m&ModeFSCreds != 0) != (m&ModeRealCreds != 0)
}

// String returns the mode in the scenario file's spelling, for example
// "read_fscreds" or "attach_realcreds,noaudit".
func (m Mode) String() string {
	var b strings.Builder
	switch {
	case m&ModeRead != 0 && m&ModeAttach != 0:
		b.WriteString("read|attach")
	case m&ModeRead != 0:
		b.WriteString("read")
	case m&ModeAttach != 0:
		b.WriteString("attach")
	default:
		b.WriteString("none")
	}
	switch {
	case m&ModeFSCreds != 0 && m&ModeRealCreds != 0:
		b.WriteString("_fscreds|realcreds")
	case m&ModeFSCreds != 0:
		b.WriteString("_fscreds")
	case m&ModeRealCreds != 0:
		b.WriteString("_realcreds")
	}
	if m&ModeNoAudit != 0 {
		b.WriteString(",noaudit")
	}
	return b.String()
}

// ParseMode parses the scenario spelling: one of read_fscreds,
// read_realcreds, attach_fscreds, attach_realcreds, optionally followed by
// ",noaudit". The kernel's constant names (PTRACE_MODE_READ_FSCREDS) are
// accepted too, case-insensitively.
func ParseMode(s string) (Mode, error) {
	base, rest, _ := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ",")
	base = strings.TrimPrefix(base, "ptrace_mode_")
	var m Mode
	switch base {
	case "read_fscreds":
		m = ReadFSCreds
	case "read_realcreds":
		m = ReadRealCreds
	case "attach_fscreds":
		m = AttachFSCreds
	case "attach_realcreds":
		m = AttachRealCreds
	default:
		return 0, fmt.Errorf("unknown mode %q (want read_fscreds, read_realcreds, attach_fscreds or attach_realcreds, optionally with \",noaudit\")", s)
	}
	switch strings.TrimSpace(rest) {
	case "":
	case "noaudit":
		m |= ModeNoAudit
	default:
		return 0, fmt.Errorf("unknown mode flag %q in %q (only \"noaudit\" is known)", rest, s)
	}
	return m, nil
}
