package policy

// File is one parsed policy file: its statements in source order. It is
// the input of [Compile]; several files compile into one [Policy].
type File struct {
	// Name is the file name given to [Parse], used in positions.
	Name       string
	Classes    []*ClassDecl
	Attributes []*AttributeDecl
	Rules      []*Rule
	Options    []*OptionDecl
}

// ClassKind says whether a class selects subjects or targets.
type ClassKind uint8

// The class kinds.
const (
	SubjectClass ClassKind = iota + 1
	TargetClass
)

// String returns "subject" or "target".
func (k ClassKind) String() string {
	switch k {
	case SubjectClass:
		return "subject"
	case TargetClass:
		return "target"
	}
	return "class"
}

// ClassDecl is `subject NAME { selectors }` or `target NAME { … }`.
type ClassDecl struct {
	Pos       Pos
	Kind      ClassKind
	Name      string
	Selectors []*Selector
}

// Selector is one line of a class block: `[not] KEY VALUE…;`.
type Selector struct {
	Pos    Pos
	Not    bool
	Key    string
	Values []Value
}

// Value is one selector value with its position.
type Value struct {
	Pos  Pos
	Text string
}

// AttributeDecl is `attribute NAME = CLASS…;`, the union of classes of one
// kind.
type AttributeDecl struct {
	Pos     Pos
	Name    string
	Members []Value
}

// Effect is what a rule does.
type Effect uint8

// The rule effects.
const (
	Allow      Effect = iota + 1 // grant
	Deny                         // refuse, beats allow
	AuditAllow                   // log grants (does not grant)
	DontAudit                    // do not log denials (does not deny); the denial is still counted
	Protect                      // the target refuses every subject: deny * TARGET
	Neverallow                   // load-time assertion: no allow may grant this
)

var effectNames = [...]string{"", "allow", "deny", "auditallow", "dontaudit", "protect", "neverallow"}

// String returns the effect's keyword.
func (e Effect) String() string {
	if int(e) < len(effectNames) && e != 0 {
		return effectNames[e]
	}
	return "effect?"
}

// SetExpr is a rule's subject or target: `*`, a class or attribute name,
// or `{ a b -c }` (a or b, but not c).
type SetExpr struct {
	Pos     Pos
	Any     bool    // `*`, or a braced set with only exclusions
	Names   []Value // included classes or attributes
	Exclude []Value // excluded classes or attributes
}

// Rule is an access-vector statement.
type Rule struct {
	Pos     Pos
	Effect  Effect
	Subject SetExpr // Any for protect
	Target  SetExpr
	// Attach is true for `: attach`, false for `: read`.
	Attach bool
	// Items are the items named, all items of the access class for `*`
	// or when none are given.
	Items ItemSet
	// When are the conditions that must hold, WhenNot those that must
	// not (never RelNondumpable).
	When, WhenNot Relation
	// Nondumpable is `when nondumpable` on an allow rule: it widens the
	// rule to non-dumpable targets, which no rule matches otherwise.
	Nondumpable bool
	// Text is the statement's source text with white space collapsed.
	Text string
}

// OptionDecl is `option NAME VALUE;`.
type OptionDecl struct {
	Pos   Pos
	Name  string
	Value Value
}
