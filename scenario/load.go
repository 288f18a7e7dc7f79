package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/capability"
	"github.com/procgate/procgate/kernel/lsm/landlock"
	"github.com/procgate/procgate/kernel/lsm/yama"
)

// MaxSize is the largest scenario file Load accepts.
const MaxSize = 16 << 20

// LoadFile reads and loads a scenario file.
func LoadFile(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Load(path, b)
}

// Load parses a scenario from src; name is used in error positions. The
// returned error is an [ErrorList] when the file is at fault.
func Load(name string, src []byte) (*Scenario, error) {
	l := &loader{reader: reader{file: name}, src: src}
	if len(src) > MaxSize {
		l.errf(nil, "file is %d bytes; the limit is %d", len(src), MaxSize)
		return nil, l.errs
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, errEOF) || err.Error() == "EOF" {
			l.errf(nil, "empty scenario: want a mapping with kernel, usernamespaces, tasks and checks")
		} else {
			l.parseErr(err, src)
		}
		return nil, l.errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errf(&extra, "more than one YAML document; a scenario is one document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if hasAlias(root, 0) {
		l.errf(root, "YAML aliases and anchors are not accepted in scenarios")
		return nil, l.errs
	}
	s := l.load(root)
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
		return nil, l.errs
	}
	return s, nil
}

var errEOF = errors.New("EOF")

func hasAlias(n *yaml.Node, depth int) bool {
	if n == nil || depth > 64 {
		return n != nil
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c, depth+1) {
			return true
		}
	}
	return false
}

type loader struct {
	reader
	src     []byte
	w       *kernel.World
	ns      map[string]*kernel.UserNS
	tasks   map[string]*kernel.Task
	byPID   map[int]*kernel.Task
	domains map[string]*kernel.LandlockDomain
	defs    map[*kernel.Task]*taskDef
}

func (l *loader) load(root *yaml.Node) *Scenario {
	top := l.mapping(root, "scenario", "kernel", "usernamespaces", "tasks", "checks")
	l.w = kernel.NewWorld(kernel.DefaultRelease)
	l.ns = map[string]*kernel.UserNS{"init": l.w.Init}
	l.tasks = map[string]*kernel.Task{}
	l.byPID = map[int]*kernel.Task{}
	l.domains = map[string]*kernel.LandlockDomain{}
	l.defs = map[*kernel.Task]*taskDef{}
	l.kernel(top["kernel"])
	l.namespaces(top["usernamespaces"])
	l.loadTasks(top["tasks"])
	checks := l.checks(top["checks"])
	if len(l.errs) == 0 {
		if err := l.w.Validate(); err != nil {
			l.errf(root, "inconsistent world: %v", err)
		}
	}
	s := &Scenario{File: l.file, World: l.w, Checks: checks, checksLine: 1, checksCol: 1}
	if n := top["checks"]; n != nil && n.Line > 0 {
		s.checksLine, s.checksCol = n.Line, n.Column
	}
	return s
}

func (l *loader) kernel(n *yaml.Node) {
	k := l.mapping(n, "kernel", "release", "lsm", "yama", "suid_dumpable", "proc", "selinux", "apparmor", "smack", "landlock", "bpf", "features")
	if v := k["release"]; v != nil {
		r, err := kernel.ParseRelease(l.str(v, "kernel.release"))
		if err != nil {
			l.errf(v, "kernel.release: %v", err)
		} else {
			l.w.Release, l.w.Features = r, kernel.FeaturesFor(r)
		}
	}
	if v := k["features"]; v != nil {
		l.features(v)
	}
	if v := k["suid_dumpable"]; v != nil {
		if x, ok := l.integer(v, "kernel.suid_dumpable", 0, 2); ok {
			l.w.SuidDumpable = int(x)
		}
	}
	if v := k["proc"]; v != nil {
		p := l.mapping(v, "kernel.proc", "hidepid", "gid")
		if h := p["hidepid"]; h != nil {
			hp, err := kernel.ParseHidePID(l.str(h, "kernel.proc.hidepid"))
			if err != nil {
				l.errf(h, "kernel.proc.hidepid: %v", err)
			}
			l.w.Proc.HidePID = hp
		}
		if g := p["gid"]; g != nil {
			if x, ok := l.integer(g, "kernel.proc.gid", 0, 1<<32-2); ok {
				l.w.Proc.GID, l.w.Proc.HasGID = kernel.KGID(x), true
			}
		}
	}
	names := []string{"capability"}
	lsmNode := k["lsm"]
	if lsmNode != nil {
		names = nil
		for _, x := range l.seq(lsmNode, "kernel.lsm") {
			names = append(names, l.str(x, "kernel.lsm"))
		}
		if len(names) == 0 || names[0] != "capability" {
			l.errf(lsmNode, "kernel.lsm: capability must be listed first (commoncap always runs first)")
		}
	}
	seen := map[string]bool{}
	for i, name := range names {
		pos := lsmNode
		if lsmNode != nil && i < len(lsmNode.Content) {
			pos = lsmNode.Content[i]
		}
		if seen[name] {
			l.errf(pos, "kernel.lsm: %q listed twice", name)
			continue
		}
		seen[name] = true
		if m := l.module(name, pos, k); m != nil {
			l.w.LSMs = append(l.w.LSMs, m)
		}
	}
	for _, cfg := range []string{"yama", "selinux", "apparmor", "smack", "landlock", "bpf"} {
		if k[cfg] != nil && !seen[cfg] {
			l.errf(k[cfg], "kernel.%s is configured but %q is not in kernel.lsm", cfg, cfg)
		}
	}
}

// module builds the named module from its configuration under kernel.
func (l *loader) module(name string, pos *yaml.Node, k map[string]*yaml.Node) kernel.LSM {
	switch name {
	case "capability":
		return capability.New()
	case "yama":
		scope := int64(1) // upstream default; Debian patches it to 0
		if v := k["yama"]; v != nil {
			y := l.mapping(v, "kernel.yama", "ptrace_scope")
			if s := y["ptrace_scope"]; s != nil {
				scope, _ = l.integer(s, "kernel.yama.ptrace_scope", 0, 3)
			}
		}
		m, err := yama.New(int(scope))
		if err != nil {
			l.errf(pos, "%v", err)
			return nil
		}
		return m
	case "landlock":
		abi := int64(7)
		if v := k["landlock"]; v != nil {
			y := l.mapping(v, "kernel.landlock", "abi")
			if s := y["abi"]; s != nil {
				abi, _ = l.integer(s, "kernel.landlock.abi", 1, 64)
			}
		}
		return landlock.New(int(abi))
	}
	if b, ok := moduleBuilders[name]; ok {
		return b(l, pos, k[name])
	}
	// Accepted in kernel.lsm but taking no part (kernel.NoPtraceHook).
	if kernel.NoPtraceHook(name) {
		return nil
	}
	known := append([]string{"capability", "yama", "landlock"}, kernel.NoPtraceHookModules()...)
	for n := range moduleBuilders {
		known = append(known, n)
	}
	sort.Strings(known)
	l.errf(pos, "kernel.lsm: unknown security module %q%s", name, nearest(name, known))
	return nil
}

// moduleBuilders build configurable modules from their kernel.<name> node
// (which may be nil). Registered by the files that wire each module.
var moduleBuilders = map[string]func(l *loader, pos, cfg *yaml.Node) kernel.LSM{}

func (l *loader) features(n *yaml.Node) {
	f := &l.w.Features
	names := slices.Clone(kernel.FeatureNames)
	sort.Strings(names)
	for k, v := range l.mapping(n, "kernel.features", names...) {
		*f.Field(k) = l.boolean(v, "kernel.features."+k)
	}
}

func (l *loader) namespaces(n *yaml.Node) {
	type nsDef struct {
		node   *yaml.Node
		parent string
		pnode  *yaml.Node
		ns     *kernel.UserNS
		uidMap []kernel.IDExtent
		gidMap []kernel.IDExtent
	}
	defs := map[string]*nsDef{}
	var order []string
	for _, item := range l.seq(n, "usernamespaces") {
		m := l.mapping(item, "usernamespace", "name", "parent", "owner", "group", "uid_map", "gid_map")
		name := l.str(m["name"], "usernamespace.name")
		if name == "" {
			l.errf(item, "usernamespace: name is required")
			continue
		}
		if name == "init" || defs[name] != nil {
			l.errf(m["name"], "usernamespace %q defined twice (init always exists)", name)
			continue
		}
		d := &nsDef{node: item, parent: "init", pnode: m["parent"], ns: &kernel.UserNS{Name: name}}
		if m["parent"] != nil {
			d.parent = l.str(m["parent"], "usernamespace.parent")
		}
		if o := m["owner"]; o != nil {
			if x, ok := l.integer(o, "usernamespace.owner", 0, 1<<32-2); ok {
				d.ns.Owner = kernel.KUID(x)
			}
		}
		d.ns.Group = kernel.KGID(d.ns.Owner)
		if g := m["group"]; g != nil {
			if x, ok := l.integer(g, "usernamespace.group", 0, 1<<32-2); ok {
				d.ns.Group = kernel.KGID(x)
			}
		}
		d.uidMap = l.idMap(m["uid_map"], "usernamespace.uid_map", uint32(d.ns.Owner))
		d.gidMap = l.idMap(m["gid_map"], "usernamespace.gid_map", uint32(d.ns.Group))
		d.ns.UIDMap, d.ns.GIDMap = d.uidMap, d.gidMap
		defs[name] = d
		order = append(order, name)
	}
	// Resolve parents, detecting cycles.
	state := map[string]int{} // 1 visiting, 2 done
	var resolve func(name string) bool
	resolve = func(name string) bool {
		d := defs[name]
		switch state[name] {
		case 1:
			l.errf(d.node, "usernamespace %q: parent chain forms a cycle", name)
			return false
		case 2:
			return d.ns.Parent != nil
		}
		state[name] = 1
		defer func() { state[name] = 2 }()
		if d.parent == "init" {
			d.ns.Parent, d.ns.Level = l.w.Init, 1
			return true
		}
		p := defs[d.parent]
		if p == nil {
			l.errf(d.pnode, "usernamespace %q: unknown parent %q%s", name, d.parent, nearest(d.parent, append([]string{"init"}, order...)))
			return false
		}
		if !resolve(d.parent) {
			return false
		}
		d.ns.Parent, d.ns.Level = p.ns, p.ns.Level+1
		return true
	}
	for _, name := range order {
		if resolve(name) {
			l.ns[name] = defs[name].ns
			l.w.Namespaces = append(l.w.Namespaces, defs[name].ns)
		}
	}
}

// idMap reads [[inside, outside, count], …]; the default maps 0 to def.
func (l *loader) idMap(n *yaml.Node, what string, def uint32) []kernel.IDExtent {
	if n == nil {
		return []kernel.IDExtent{{Inside: 0, Outside: def, Count: 1}}
	}
	var out []kernel.IDExtent
	for _, e := range l.seq(n, what) {
		parts := l.seq(e, what)
		if len(parts) != 3 {
			l.errf(e, "%s: want [inside, outside, count]", what)
			continue
		}
		var v [3]uint32
		for i, p := range parts {
			x, _ := l.integer(p, what, 0, 1<<32-1)
			v[i] = uint32(x)
		}
		if v[2] == 0 {
			l.errf(e, "%s: count must be positive", what)
		}
		out = append(out, kernel.IDExtent{Inside: v[0], Outside: v[1], Count: v[2]})
	}
	return out
}

func (l *loader) nsRef(n *yaml.Node, what string) *kernel.UserNS {
	name := l.str(n, what)
	ns := l.ns[name]
	if ns == nil {
		known := make([]string, 0, len(l.ns))
		for k := range l.ns {
			known = append(known, k)
		}
		sort.Strings(known)
		l.errf(n, "%s: unknown user namespace %q%s", what, name, nearest(name, known))
		return l.w.Init
	}
	return ns
}

func (l *loader) domain(path []string) *kernel.LandlockDomain {
	var parent *kernel.LandlockDomain
	for i := range path {
		key := strings.Join(path[:i+1], "/")
		d := l.domains[key]
		if d == nil {
			d = &kernel.LandlockDomain{Name: key, Parent: parent}
			l.domains[key] = d
		}
		parent = d
	}
	return parent
}

func (l *loader) taskRef(n *yaml.Node, what string) *kernel.Task {
	name := l.str(n, what)
	if t := l.tasks[name]; t != nil {
		return t
	}
	if pid, err := strconv.Atoi(name); err == nil {
		if t := l.byPID[pid]; t != nil {
			return t
		}
	}
	known := make([]string, 0, len(l.tasks))
	for k := range l.tasks {
		known = append(known, k)
	}
	sort.Strings(known)
	l.errf(n, "%s: unknown task %q%s", what, name, nearest(name, known))
	return nil
}
