package scenario

import (
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/kernel"
)

func (l *loader) checks(n *yaml.Node) []*Check {
	var out []*Check
	names := map[string]bool{}
	for i, item := range l.seq(n, "checks") {
		m := l.mapping(item, "check", "name", "caller", "target", "entry", "syscall", "mode", "expect")
		c := &Check{Name: l.str(m["name"], "check.name"), Line: item.Line}
		if c.Name == "" {
			c.Name = "check " + strconv.Itoa(i+1)
		}
		if names[c.Name] {
			l.errf(m["name"], "check %q: name used twice", c.Name)
		}
		names[c.Name] = true
		if m["caller"] == nil || m["target"] == nil {
			l.errf(item, "check %q: caller and target are required", c.Name)
			continue
		}
		c.Caller = l.taskRef(m["caller"], "check.caller")
		c.Target = l.taskRef(m["target"], "check.target")
		given := 0
		if v := m["entry"]; v != nil {
			given++
			c.EntryPath = l.str(v, "check.entry")
			e, err := kernel.LookupEntry(c.EntryPath)
			if err != nil {
				l.errf(v, "check %q: %v", c.Name, err)
			}
			c.Entry = e
		}
		if v := m["syscall"]; v != nil {
			given++
			sc, err := kernel.LookupSyscall(l.str(v, "check.syscall"))
			if err != nil {
				l.errf(v, "check %q: %v", c.Name, err)
			}
			c.Syscall = sc
		}
		if v := m["mode"]; v != nil {
			given++
			md, err := kernel.ParseMode(l.str(v, "check.mode"))
			if err != nil {
				l.errf(v, "check %q: %v", c.Name, err)
			}
			c.Mode = md
		}
		if given != 1 {
			l.errf(item, "check %q: give exactly one of entry, syscall or mode", c.Name)
			continue
		}
		if v := m["expect"]; v != nil {
			c.Expect = l.str(v, "check.expect")
			switch c.Expect {
			case "allow", "masked":
			default:
				if _, err := kernel.ParseErrno(c.Expect); err != nil {
					l.errf(v, "check %q: expect: %v (or allow, masked)", c.Name, err)
				}
			}
		}
		if c.Syscall != nil && c.Syscall.Name == "ptrace_traceme" && c.Caller != nil && c.Target != nil &&
			c.Caller.Parent != nil && c.Caller.Parent.GroupLeader() != c.Target.GroupLeader() {
			l.errf(m["target"], "check %q: PTRACE_TRACEME names the caller's parent (%q) as tracer, not %q", c.Name, c.Caller.Parent.Name, c.Target.Name)
		}
		if c.Caller == nil || c.Target == nil || (c.Entry == nil && c.Syscall == nil && c.Mode == 0) {
			continue
		}
		out = append(out, c)
	}
	return out
}
