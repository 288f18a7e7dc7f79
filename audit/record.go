// Package audit is procgate's one audit record format: the record an
// enforcement point writes for each audited decision, in the shape of the
// kernel's AVC records or as one JSON object, and the one parser that
// reads both back, with or without a syslog or journal prefix, rate-limit
// summaries included.
//
// The gate's Auditor writes records, the policy fills them from its
// explanations (policy.Explanation.AuditLine) and `procgate policy why`
// reads them back. The package knows nothing of policies or gates: an
// item, an effect or a rule is a name here, and a caller that knows the
// vocabulary passes a [Vocabulary] to [ParseWith] to have unknown names
// refused with their position.
//
// An AVC-shaped record, one line (docs/api.md, "Audit log and metrics"):
//
//	audit(1795918064.316:7): broker: denied { read:io } for pid=27551 comm="procgate" uid=65534 tpid=27544 tcomm="sleep" tuid=0 rule=none(allow@default.pol:25) gen=3 permissive=0
//	audit(1795918065.002:8): broker: denied { * } for uid=65534 suppressed=41 gen=3
//	audit(1795918065.002:9): broker: denied { * } for suppressed=1200 gen=3
//
// The last two are rate-limit summaries ([Scope]): 41 more denials of
// uid 65534, and 1,200 more of callers past the log's budget, counted but
// not written.
//
// Free text is written as the kernel's audit_log_untrustedstring
// (kernel/audit.c) writes it: comm= and tcomm= in double quotes when they
// hold only printable ASCII without spaces or quotes, as upper-case hex
// otherwise; contexts and the rule are bare when they are such a plain
// token (and cannot be mistaken for hex), quoted or hex otherwise. No
// record ever carries a value read from a process.
package audit

import (
	"fmt"
	"time"
)

// Tag names the writer in an AVC-shaped record ("broker: denied …"), as
// "avc:" does in the kernel's: the broker's gate, which decides for the
// broker and the FUSE mount.
const Tag = "broker"

// TagBPF names procgate's BPF LSM program as a record's writer: a denial
// the kernel's ptrace hook made (procgate enforce writes it). Its access
// is a whole class, "{ read }" or "{ attach }": the hook cannot tell
// items apart.
const TagBPF = "bpf"

// Format is a record's shape.
type Format uint8

// The shapes: the kernel AVC's (policy-language.md §6.6) and one JSON
// object per line.
const (
	AVC Format = iota
	JSON
)

// String returns "avc" or "json".
func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "avc"
}

// Access classes.
const (
	Read   = "read"
	Attach = "attach"
)

// Record is one audit record: an audited decision, or a summary of the
// decisions a rate limit kept from being written.
type Record struct {
	// Writer is the enforcement point that decided: "" (or [Tag]) for
	// the broker's gate, [TagBPF] for procgate's BPF LSM program. The
	// AVC shape writes it as its tag, the JSON shape as "writer" (not
	// written for the gate, so that its records read as before).
	Writer string
	// Time and Serial are the header, audit(SEC.MSEC:SERIAL). A record
	// with a zero Time has neither (a record that was not logged, such as
	// the one `procgate policy explain` prints). The AVC shape keeps
	// milliseconds, the JSON shape nanoseconds; parsed times are in UTC.
	Time   time.Time
	Serial uint64
	// Granted is the result: granted or denied.
	Granted bool
	// Access is the access class, [Read] or [Attach]; Item is the item's
	// name, "attach" for the attach operation itself, and the class's
	// own name for the whole class (a [TagBPF] record).
	Access, Item string
	// Subject is the process that asked, Target the process asked about.
	// A summary carries their UIDs only.
	Subject, Target Process
	// Rule is the rule= field: the rules that decided (see [Rule]). A
	// record written with an empty Rule says none.
	Rule string
	// Generation is the generation of the policy that decided.
	Generation uint64
	// Reason is one sentence on the decision. The JSON shape carries it;
	// the AVC shape does not (free text with spaces would be hex there).
	Reason string
	// Suppressed, when not 0, makes the record a summary: this many
	// decisions were counted but not written. Scope says which.
	Suppressed uint64
	// Scope, for a summary, is what it counts. A summary of ScopeCaller
	// or ScopeAll counts decisions on any target and item: its Access,
	// Item and Target are empty (the record says "{ * }"), and a
	// ScopeAll summary has no Subject either.
	Scope Scope
}

// Scope is what a rate-limit summary counts: decisions with its result
// and generation and, by scope, its subject uid, target uid and access.
type Scope uint8

// The scopes.
const (
	// ScopeKey counts the decisions with the summary's subject uid,
	// target uid, access and item (a rate limit per key).
	ScopeKey Scope = iota
	// ScopeCaller counts the decisions of one caller, the summary's
	// subject uid, on any target and item: those past the caller's burst.
	ScopeCaller
	// ScopeAll counts decisions of any caller: those past a budget that
	// all callers share.
	ScopeAll
)

// anyAccess is how a summary of ScopeCaller or ScopeAll writes its
// access: "{ * }" in the AVC shape, "access":"*","item":"*" in JSON.
const anyAccess = "*"

// Process is one side of a record.
type Process struct {
	PID int
	// Comm is the command name (status "Name:"), any bytes.
	Comm string
	// UID is the effective uid.
	UID uint32
	// Context is the security label: the SELinux context or, without
	// SELinux, the AppArmor label; "" when there is none.
	Context string
}

// IsSummary reports whether r is a rate-limit summary.
func (r *Record) IsSummary() bool { return r.Suppressed > 0 }

// Result returns "granted" or "denied".
func (r *Record) Result() string { return result(r.Granted) }

func result(granted bool) string {
	if granted {
		return "granted"
	}
	return "denied"
}

// AccessName returns what an AVC-shaped record writes between the
// braces: "read:fd", "attach:mem", "attach" for the attach operation,
// and "read" for the whole READ class (a [TagBPF] record).
func AccessName(access, item string) string {
	if access == item {
		return access
	}
	return access + ":" + item
}

// tag returns the AVC tag of r's writer.
func (r *Record) tag() string {
	if r.Writer == "" {
		return Tag
	}
	return r.Writer
}

// SyntaxError is a malformed record, with the position in the line (as
// given to [Parse], prefix included) where the problem was found.
type SyntaxError struct {
	// Col is the column, counted in bytes from 1.
	Col int
	Msg string
}

// Error returns "audit record: column N: message".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("audit record: column %d: %s", e.Col, e.Msg)
}

// errAt returns a SyntaxError at byte offset off (0-based).
func errAt(off int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Col: off + 1, Msg: fmt.Sprintf(format, args...)}
}
