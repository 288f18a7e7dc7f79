package scenario

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// Marshal writes a world and its checks as a scenario file in the format
// Load reads, such that loading the result gives a world that answers
// every question as w does. Every setting is written explicitly
// (capability sets, dumpable values, id maps), so that no default of the
// loader is relied on. Checks may be nil.
//
// Security modules other than capability, Yama and Landlock are written
// by the writer registered for them in moduleWriters; a module without
// one is an error, since dropping its policy would change the answers.
func Marshal(w *kernel.World, checks []*Check) ([]byte, error) {
	return MarshalWithComment(w, checks, "")
}

// MarshalWithComment is Marshal with a comment block at the top of the
// file: each line of comment becomes a "# " line.
func MarshalWithComment(w *kernel.World, checks []*Check, comment string) ([]byte, error) {
	m := &marshaller{names: map[*kernel.Task]string{}, nsNames: map[*kernel.UserNS]string{}}
	root := mapNode()
	k, err := m.kernel(w)
	if err != nil {
		return nil, err
	}
	addPair(root, "kernel", k)
	if err := m.nameNamespaces(w); err != nil {
		return nil, err
	}
	if ns := m.namespaces(w); ns != nil {
		addPair(root, "usernamespaces", ns)
	}
	m.nameTasks(w)
	tasks, err := m.tasks(w)
	if err != nil {
		return nil, err
	}
	addPair(root, "tasks", tasks)
	if len(checks) > 0 {
		cs, err := m.checks(checks)
		if err != nil {
			return nil, err
		}
		addPair(root, "checks", cs)
	}
	var buf bytes.Buffer
	if comment != "" {
		for line := range strings.SplitSeq(strings.TrimRight(comment, "\n"), "\n") {
			buf.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("encode scenario: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode scenario: %w", err)
	}
	return buf.Bytes(), nil
}

// moduleWriters write the kernel.<name> configuration of modules other
// than capability, Yama and Landlock (the counterpart of moduleBuilders).
// A writer returns the configuration node, or nil when there is none.
var moduleWriters = map[string]func(m kernel.LSM) (*yaml.Node, error){}

type marshaller struct {
	names   map[*kernel.Task]string
	nsNames map[*kernel.UserNS]string
}

func (m *marshaller) kernel(w *kernel.World) (*yaml.Node, error) {
	k := mapNode()
	addPair(k, "release", quoted(w.Release.String()))
	lsm := flowSeq()
	var configs [][2]any
	for i, mod := range w.LSMs {
		name := mod.Name()
		if i == 0 && name != "capability" {
			return nil, fmt.Errorf("write scenario: the capability module must be first, not %q", name)
		}
		lsm.Content = append(lsm.Content, scalar(name))
		switch x := mod.(type) {
		case *yama.Module:
			configs = append(configs, [2]any{"yama", flowMap("ptrace_scope", intNode(int64(x.Scope)))})
		case landlock.Module:
			configs = append(configs, [2]any{"landlock", flowMap("abi", intNode(int64(x.ABI)))})
		case *landlock.Module:
			configs = append(configs, [2]any{"landlock", flowMap("abi", intNode(int64(x.ABI)))})
		default:
			if name == "capability" {
				continue
			}
			wr, ok := moduleWriters[name]
			if !ok {
				return nil, fmt.Errorf("write scenario: security module %q cannot be written (no writer for its configuration)", name)
			}
			cfg, err := wr(mod)
			if err != nil {
				return nil, fmt.Errorf("write scenario: module %s: %w", name, err)
			}
			if cfg != nil {
				configs = append(configs, [2]any{name, cfg})
			}
		}
	}
	if len(w.LSMs) == 0 {
		return nil, fmt.Errorf("write scenario: the world has no security modules (capability is required)")
	}
	addPair(k, "lsm", lsm)
	for _, c := range configs {
		addPair(k, c[0].(string), c[1].(*yaml.Node))
	}
	addPair(k, "suid_dumpable", intNode(int64(w.SuidDumpable)))
	proc := flowMap("hidepid", scalar(w.Proc.HidePID.String()))
	if w.Proc.HasGID {
		addPair(proc, "gid", intNode(int64(w.Proc.GID)))
	}
	addPair(k, "proc", proc)
	if w.Features != kernel.FeaturesFor(w.Release) {
		f := w.Features
		var kv []any
		for _, name := range kernel.FeatureNames {
			kv = append(kv, name, boolNode(*f.Field(name)))
		}
		addPair(k, "features", flowMap(kv...))
	}
	return k, nil
}

// nameNamespaces gives every namespace a unique name ("init" for the
// initial one).
func (m *marshaller) nameNamespaces(w *kernel.World) error {
	if w.Init == nil {
		return fmt.Errorf("write scenario: the world has no initial user namespace")
	}
	m.nsNames[w.Init] = "init"
	used := map[string]bool{"init": true}
	for i, ns := range w.Namespaces {
		if ns == w.Init {
			continue
		}
		name := ns.Name
		if name == "" || used[name] {
			name = "userns" + strconv.Itoa(i)
			for used[name] {
				name += "_"
			}
		}
		used[name] = true
		m.nsNames[ns] = name
	}
	return nil
}

func (m *marshaller) nsName(ns *kernel.UserNS) (string, error) {
	if n, ok := m.nsNames[ns]; ok {
		return n, nil
	}
	return "", fmt.Errorf("write scenario: a user namespace (%q) is used but not listed in the world's namespaces", ns.Name)
}

func (m *marshaller) namespaces(w *kernel.World) *yaml.Node {
	var list []*kernel.UserNS
	for _, ns := range w.Namespaces {
		if ns != w.Init {
			list = append(list, ns)
		}
	}
	if len(list) == 0 {
		return nil
	}
	// Parents first: the loader does not need it, readers do.
	sort.SliceStable(list, func(i, j int) bool { return list[i].Level < list[j].Level })
	seq := blockSeq()
	for _, ns := range list {
		n := flowMap("name", scalar(m.nsNames[ns]))
		parent := "init"
		if ns.Parent != nil {
			if p, ok := m.nsNames[ns.Parent]; ok {
				parent = p
			}
		}
		addPair(n, "parent", scalar(parent))
		addPair(n, "owner", intNode(int64(ns.Owner)))
		addPair(n, "group", intNode(int64(ns.Group)))
		addPair(n, "uid_map", idMap(ns.UIDMap))
		addPair(n, "gid_map", idMap(ns.GIDMap))
		seq.Content = append(seq.Content, n)
	}
	return seq
}

func idMap(m []kernel.IDExtent) *yaml.Node {
	seq := flowSeq()
	for _, e := range m {
		seq.Content = append(seq.Content, flowSeqOf(intNode(int64(e.Inside)), intNode(int64(e.Outside)), intNode(int64(e.Count))))
	}
	return seq
}

// nameTasks gives every task a unique name: its own, or "pid-N".
func (m *marshaller) nameTasks(w *kernel.World) {
	used := map[string]bool{}
	for _, t := range w.Tasks {
		name := t.Name
		if name == "" || used[name] || isNumber(name) && name != strconv.Itoa(t.PID) {
			name = "pid-" + strconv.Itoa(t.PID)
			for used[name] {
				name += "_"
			}
		}
		used[name] = true
		m.names[t] = name
	}
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func (m *marshaller) taskName(t *kernel.Task) (string, error) {
	if n, ok := m.names[t]; ok {
		return n, nil
	}
	return "", fmt.Errorf("write scenario: task %q (pid %d) is referred to but not in the world", t.Name, t.PID)
}

func (m *marshaller) tasks(w *kernel.World) (*yaml.Node, error) {
	seq := blockSeq()
	seenPID := map[int]*kernel.Task{}
	mmOwner := map[*kernel.MM]*kernel.Task{}
	for _, t := range w.Tasks {
		if o := seenPID[t.PID]; o != nil {
			return nil, fmt.Errorf("write scenario: tasks %q and %q share pid %d", o.Name, t.Name, t.PID)
		}
		seenPID[t.PID] = t
		if t.IsLeader() && t.MM != nil && mmOwner[t.MM] == nil {
			mmOwner[t.MM] = t
		}
	}
	for _, t := range w.Tasks {
		n := flowMap("name", scalar(m.names[t]), "pid", intNode(int64(t.PID)))
		if t.TGID != t.PID {
			addPair(n, "tgid", intNode(int64(t.TGID)))
		}
		if t.Parent != nil && t.IsLeader() {
			p, err := m.taskName(t.Parent)
			if err != nil {
				return nil, err
			}
			addPair(n, "parent", scalar(p))
		}
		c := &t.Cred
		addIDs(n, "uid", uint32(c.UID), uint32(c.EUID), uint32(c.SUID), uint32(c.FSUID))
		addIDs(n, "gid", uint32(c.GID), uint32(c.EGID), uint32(c.SGID), uint32(c.FSGID))
		if len(c.Groups) > 0 {
			g := flowSeq()
			for _, x := range c.Groups {
				g.Content = append(g.Content, intNode(int64(x)))
			}
			addPair(n, "groups", g)
		}
		addPair(n, "caps", caps(c.CapEffective, c.CapPermitted))
		if c.UserNS == nil {
			return nil, fmt.Errorf("write scenario: task %q has no user namespace", t.Name)
		}
		nsName, err := m.nsName(c.UserNS)
		if err != nil {
			return nil, err
		}
		if nsName != "init" {
			addPair(n, "userns", scalar(nsName))
		}
		if t.Kthread {
			addPair(n, "kthread", boolNode(true))
		}
		if t.State != kernel.Running {
			addPair(n, "state", scalar(t.State.String()))
		}
		if err := m.taskMM(n, t, mmOwner); err != nil {
			return nil, err
		}
		if t.Tracer != nil {
			tr, err := m.taskName(t.Tracer)
			if err != nil {
				return nil, err
			}
			addPair(n, "tracer", scalar(tr))
		}
		if x := t.Ptracer; x != nil && (t.IsLeader() || t.Leader == nil) {
			switch {
			case x.Any:
				addPair(n, "ptracer", scalar("any"))
			case x.Tracer != nil:
				tr, err := m.taskName(x.Tracer)
				if err != nil {
					return nil, err
				}
				addPair(n, "ptracer", scalar(tr))
			}
		}
		for _, l := range [][2]string{{"selinux", t.SELinux}, {"apparmor", t.AppArmor}, {"smack", t.Smack}} {
			if l[1] != "" {
				addPair(n, l[0], scalar(l[1]))
			}
		}
		if t.Landlock != nil {
			addPair(n, "landlock", landlockPath(t.Landlock))
		}
		if t.PIDNS != "" {
			addPair(n, "pidns", scalar(t.PIDNS))
		}
		if t.PIDNSInode != 0 {
			addPair(n, "pidns_inode", intNode(int64(t.PIDNSInode)))
		}
		if c := cgroupNode(t); c != nil {
			addPair(n, "cgroup", c)
		}
		if t.Comm != "" {
			addPair(n, "comm", scalar(t.Comm))
		}
		if t.Cmdline != "" {
			addPair(n, "cmdline", scalar(t.Cmdline))
		}
		seq.Content = append(seq.Content, n)
	}
	return seq, nil
}

// taskMM writes the address space: "none", a share of another leader's
// (vfork, CLONE_VM), or dumpable and namespace. Threads share their
// leader's implicitly.
func (m *marshaller) taskMM(n *yaml.Node, t *kernel.Task, owner map[*kernel.MM]*kernel.Task) error {
	noMM := t.Kthread || t.State != kernel.Running
	switch {
	case t.MM == nil && noMM:
		if t.UserDumpable {
			addPair(n, "user_dumpable", boolNode(true))
		}
		return nil
	case t.MM == nil:
		if !t.IsLeader() {
			return fmt.Errorf("write scenario: thread %q has no mm while running", t.Name)
		}
		addPair(n, "mm", scalar("none"))
		return nil
	case noMM:
		return fmt.Errorf("write scenario: task %q is a %s and cannot have an mm", t.Name, map[bool]string{true: "kernel thread", false: t.State.String() + " task"}[t.Kthread])
	}
	if !t.IsLeader() {
		if t.Leader == nil || t.Leader.MM != t.MM {
			return fmt.Errorf("write scenario: thread %q does not share its leader's mm", t.Name)
		}
		return nil
	}
	if o := owner[t.MM]; o != t {
		name, err := m.taskName(o)
		if err != nil {
			return err
		}
		addPair(n, "mm", flowMap("share", scalar(name)))
		return nil
	}
	if t.MM.UserNS == nil {
		return fmt.Errorf("write scenario: task %q: mm has no user namespace", t.Name)
	}
	ns, err := m.nsName(t.MM.UserNS)
	if err != nil {
		return err
	}
	mm := flowMap("dumpable", intNode(int64(t.MM.Dumpable)), "userns", scalar(ns))
	if e := t.MM.Exe; e != nil {
		cl := bpf.Clause{Kind: bpf.KindExe, Exes: []kernel.FileID{*e}}
		addPair(mm, "exe", quoted(strings.TrimPrefix(cl.String(), "exe ")))
	}
	addPair(n, "mm", mm)
	return nil
}

// cgroupNode writes a task's cgroup v2: its path with each directory's
// id, or its id alone; nil when unknown.
func cgroupNode(t *kernel.Task) *yaml.Node {
	if len(t.Cgroup) > 0 {
		var path strings.Builder
		ids := flowSeq()
		for i, c := range t.Cgroup {
			if i > 0 {
				path.WriteString("/" + c.Name)
			}
			ids.Content = append(ids.Content, intNode(int64(c.ID)))
		}
		p := path.String()
		if p == "" {
			p = "/"
		}
		return flowMap("path", quoted(p), "ids", ids)
	}
	if t.CgroupID != 0 {
		return flowMap("id", intNode(int64(t.CgroupID)))
	}
	return nil
}

// landlockPath lists the domain's chain, outermost first, each by the
// last part of its name (the loader names nested domains by their path).
func landlockPath(d *kernel.LandlockDomain) *yaml.Node {
	var chain []*kernel.LandlockDomain
	for x := d; x != nil; x = x.Parent {
		chain = append(chain, x)
	}
	seq := flowSeq()
	for i := len(chain) - 1; i >= 0; i-- {
		name := chain[i].Name
		if p := chain[i].Parent; p != nil {
			name = strings.TrimPrefix(name, p.Name+"/")
		}
		if name == "" {
			name = "domain" + strconv.Itoa(len(chain)-i)
		}
		seq.Content = append(seq.Content, scalar(name))
	}
	return seq
}

func addIDs(n *yaml.Node, key string, r, e, s, fs uint32) {
	if r == e && r == s && r == fs {
		addPair(n, key, intNode(int64(r)))
		return
	}
	addPair(n, key+"s", flowMap("real", intNode(int64(r)), "effective", intNode(int64(e)), "saved", intNode(int64(s)), "fs", intNode(int64(fs))))
}

func caps(eff, prm kernel.CapSet) *yaml.Node {
	list := func(s kernel.CapSet) *yaml.Node {
		switch s {
		case 0:
			return scalar("none")
		case kernel.CapSetAll:
			return scalar("all")
		}
		seq := flowSeq()
		for _, c := range s.Caps() {
			seq.Content = append(seq.Content, scalar(c.String()))
		}
		return seq
	}
	if eff == prm {
		return list(eff)
	}
	return flowMap("effective", list(eff), "permitted", list(prm))
}

func (m *marshaller) checks(checks []*Check) (*yaml.Node, error) {
	seq := blockSeq()
	for i, c := range checks {
		if c.Caller == nil || c.Target == nil {
			return nil, fmt.Errorf("write scenario: check %d has no caller or target", i+1)
		}
		caller, err := m.taskName(c.Caller)
		if err != nil {
			return nil, err
		}
		target, err := m.taskName(c.Target)
		if err != nil {
			return nil, err
		}
		name := c.Name
		if name == "" {
			name = "check " + strconv.Itoa(i+1)
		}
		n := flowMap("name", scalar(name), "caller", scalar(caller), "target", scalar(target))
		switch {
		case c.Entry != nil:
			p := c.EntryPath
			if p == "" {
				p = c.Entry.Name
			}
			addPair(n, "entry", scalar(p))
		case c.Syscall != nil:
			addPair(n, "syscall", scalar(c.Syscall.Name))
		case c.Mode != 0:
			addPair(n, "mode", scalar(c.Mode.String()))
		default:
			return nil, fmt.Errorf("write scenario: check %q asks nothing (no entry, syscall or mode)", name)
		}
		if c.Expect != "" {
			addPair(n, "expect", scalar(c.Expect))
		}
		seq.Content = append(seq.Content, n)
	}
	return seq, nil
}

// YAML node helpers.

func mapNode() *yaml.Node  { return &yaml.Node{Kind: yaml.MappingNode} }
func blockSeq() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode} }
func flowSeq() *yaml.Node  { return &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle} }

func flowSeqOf(items ...*yaml.Node) *yaml.Node {
	n := flowSeq()
	n.Content = items
	return n
}

// flowMap builds a one-line mapping from alternating keys and values.
func flowMap(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	for i := 0; i+1 < len(kv); i += 2 {
		addPair(n, kv[i].(string), kv[i+1].(*yaml.Node))
	}
	return n
}

func addPair(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, scalar(key), v)
}

// scalar is a string; the encoder quotes it when it would otherwise read
// as another type or is not plain.
func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}

func intNode(v int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}
