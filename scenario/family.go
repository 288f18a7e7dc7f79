package scenario

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
)

// threadParents gives every thread its leader's parent: a thread's
// real_parent is its thread-group leader's (kernel/fork.c:copy_process,
// CLONE_THREAD). A thread may restate that parent; a different one is an
// error naming the leader's.
func (l *loader) threadParents(defs []*taskDef) {
	for _, d := range defs {
		t := d.t
		if t.Leader == nil || t.Leader == t {
			continue
		}
		want := t.Leader.Parent
		if v := d.m["parent"]; v != nil && v.Kind == yaml.ScalarNode {
			switch given := v.Value; {
			case given == "" || given == "0":
				if want != nil {
					l.errf(v, "task %q is a thread of %q: its parent is its leader's (%q), not none", t.Name, t.Leader.Name, want.Name)
				}
			case t.Parent == nil:
				// An unknown task or the task itself: already reported.
			case t.Parent != want:
				l.errf(v, "task %q is a thread of %q: its parent is its leader's (%s), not %q", t.Name, t.Leader.Name, taskOrNone(want), t.Parent.Name)
			}
		}
		t.Parent = want
	}
}

func taskOrNone(t *kernel.Task) string {
	if t == nil {
		return "none"
	}
	return strconv.Quote(t.Name)
}

// threadMM checks what a running thread says of its mm, v, against the
// mm it shares with its leader, t.MM: a restatement (the same dumpable
// value, user namespace or shared task) is accepted; a conflict is an
// error naming the leader's mm.
func (l *loader) threadMM(d *taskDef, v *yaml.Node) {
	t := d.t
	conflict := func(n *yaml.Node, what string) {
		l.errf(n, "task %q is a thread of %q: its mm is its leader's (%s), not %s", t.Name, t.Leader.Name, describeMM(t.MM), what)
	}
	if v.Kind == yaml.ScalarNode && v.Value == "none" {
		conflict(v, "none")
		return
	}
	keys := l.mapping(v, "task.mm", "dumpable", "userns", "share")
	if s := keys["share"]; s != nil {
		if len(keys) > 1 {
			l.errf(s, "task.mm: share takes the other task's mm as it is; give no other keys")
		}
		if o := l.taskRef(s, "task.mm.share"); o != nil {
			o = o.GroupLeader()
			if od := l.defs[o]; od != nil {
				l.taskMM(od)
			}
			if o.MM != t.MM {
				conflict(s, "the mm of "+strconv.Quote(o.Name))
			}
		}
		return
	}
	if x := keys["dumpable"]; x != nil {
		if dv, ok := l.integer(x, "task.mm.dumpable", 0, 2); ok && kernel.Dumpable(dv) != t.MM.Dumpable {
			conflict(x, "dumpable "+strconv.FormatInt(dv, 10))
		}
	}
	if x := keys["userns"]; x != nil {
		if ns := l.nsRef(x, "task.mm.userns"); ns != t.MM.UserNS && l.ns[x.Value] != nil {
			conflict(x, "userns "+strconv.Quote(ns.Name))
		}
	}
}

// describeMM writes an mm as a scenario would: {dumpable: 1, userns: init}.
func describeMM(mm *kernel.MM) string {
	return "{dumpable: " + strconv.Itoa(int(mm.Dumpable)) + ", userns: " + mm.UserNS.Name + "}"
}

// parentCycles reports every cycle of parents, of any length, once, at
// the parent key of its first task in file order. The walk is Yama's
// (security/yama/yama_lsm.c:task_is_descendant): from a task's
// thread-group leader to that leader's parent, so a leader whose parent
// is one of its own threads is a cycle too.
func (l *loader) parentCycles(defs []*taskDef) {
	order := make(map[*kernel.Task]int, len(defs))
	for i, d := range defs {
		order[d.t] = i
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[*kernel.Task]int{}
	for _, d := range defs {
		var path []*kernel.Task
		for w := d.t.GroupLeader(); w != nil && state[w] != done; {
			if state[w] == onPath {
				l.reportCycle(path[indexOf(path, w):], order)
				break
			}
			state[w] = onPath
			path = append(path, w)
			if w.Parent == nil {
				break
			}
			w = w.Parent.GroupLeader()
		}
		for _, x := range path {
			state[x] = done
		}
	}
}

func indexOf(path []*kernel.Task, t *kernel.Task) int {
	for i, x := range path {
		if x == t {
			return i
		}
	}
	return 0
}

// reportCycle reports the cycle of leaders cyc at its first task in file
// order: "task "a": parent chain forms a cycle: a -> b -> a".
func (l *loader) reportCycle(cyc []*kernel.Task, order map[*kernel.Task]int) {
	first := cyc[0]
	for _, t := range cyc[1:] {
		if o, ok := order[t]; ok && o < order[first] {
			first = t
		}
	}
	names := []string{first.Name}
	for w := first; ; {
		p := w.Parent
		name := p.Name
		if p.GroupLeader() != p {
			name += " (a thread of " + p.GroupLeader().Name + ")"
		}
		names = append(names, name)
		if w = p.GroupLeader(); w == first || len(names) > len(cyc)+1 {
			break
		}
	}
	var at *yaml.Node
	if d := l.defs[first]; d != nil {
		at = d.m["parent"]
	}
	l.errf(at, "task %q: parent chain forms a cycle: %s", first.Name, strings.Join(names, " -> "))
}
