package kernel

// PtraceMayAccess answers ptrace_may_access(target, mode) for caller
// (kernel/ptrace.c:__ptrace_may_access). The returned decision carries the
// errno the core check returns (EPERM, or the denying module's errno);
// wrappers such as /proc entries map it to what their callers see. It does
// not allocate.
func (w *World) PtraceMayAccess(caller, target *Task, mode Mode) Decision {
	errno, layer := w.ptraceMayAccess(Env{W: w}, caller, target, mode)
	return Decision{Allowed: errno == OK, Errno: errno, Layer: layer}
}

// ExplainPtraceMayAccess is PtraceMayAccess with the steps and audit
// records filled in.
func (w *World) ExplainPtraceMayAccess(caller, target *Task, mode Mode) Decision {
	t := &Trace{}
	errno, layer := w.ptraceMayAccess(Env{W: w, T: t}, caller, target, mode)
	return Decision{Allowed: errno == OK, Errno: errno, Layer: layer, Steps: t.Steps, Audit: t.Audit}
}

// ptraceMayAccess is __ptrace_may_access. It returns OK or the errno, and
// the layer that decided.
func (w *World) ptraceMayAccess(e Env, c, t *Task, mode Mode) (Errno, Layer) {
	tr := e.T
	if w.Mutation.SwapCreds && mode.CredsWellFormed() {
		mode ^= ModeFSCreds | ModeRealCreds // the mutation test only
	}
	// Step 0: exactly one creds selector, else WARN and deny.
	if !mode.CredsWellFormed() {
		if tr.On() {
			tr.Addf(LayerMode, Deny, "mode %s has %s creds selector: the kernel WARNs once and returns EPERM", mode,
				map[bool]string{true: "both", false: "no"}[mode&ModeFSCreds != 0])
		}
		return EPERM, LayerMode
	}
	// Step 1: same thread group — introspection is never denied.
	if SameThreadGroup(c, t) && w.Mutation.Skip&SkipThreadGroup == 0 {
		if tr.On() {
			tr.Addf(LayerThreadGroup, Allow, "%s and %s are in thread group %d: no uid, dumpable or security-module check", c.Name, t.Name, t.TGID)
		}
		return OK, LayerThreadGroup
	}
	// Steps 2–3: the caller's ids against all three of the target's.
	cc, tc := &c.Cred, &t.Cred
	cu, cg, which := cc.UID, cc.GID, "real"
	if mode.FSCreds() {
		cu, cg, which = cc.FSUID, cc.FSGID, "fs"
	}
	if w.Mutation.Skip&SkipIDs != 0 {
		tr.Add(LayerIDs, Pass, "mutation: the uid/gid step is skipped")
	} else if cu == tc.UID && cu == tc.EUID && cu == tc.SUID && cg == tc.GID && cg == tc.EGID && cg == tc.SGID {
		if tr.On() {
			tr.Addf(LayerIDs, Pass, "caller's %s uid/gid %d/%d equal the target's real, effective and saved uid and gid", which, cu, cg)
		}
	} else if w.ptraceHasCap(e, c, tc.UserNS, mode) {
		if tr.On() {
			tr.Addf(LayerIDs, Pass, "caller's %s uid/gid %d/%d differ from target's uids %d/%d/%d gids %d/%d/%d, but it holds CAP_SYS_PTRACE in user namespace %q",
				which, cu, cg, tc.UID, tc.EUID, tc.SUID, tc.GID, tc.EGID, tc.SGID, tc.UserNS.Name)
		}
	} else {
		if tr.On() {
			tr.Addf(LayerIDs, Deny, "caller's %s uid/gid %d/%d differ from target's uids %d/%d/%d gids %d/%d/%d and it lacks effective CAP_SYS_PTRACE in user namespace %q",
				which, cu, cg, tc.UID, tc.EUID, tc.SUID, tc.GID, tc.EGID, tc.SGID, tc.UserNS.Name)
		}
		return EPERM, LayerIDs
	}
	// Step 5: dumpable.
	if w.Mutation.Skip&SkipDumpable != 0 {
		tr.Add(LayerDumpable, Pass, "mutation: the dumpable step is skipped")
	} else if !w.stillDumpable(e, c, t, mode) {
		return EPERM, LayerDumpable
	}
	// Step 6: the security modules, first denial wins.
	return w.lsmPtraceAccessCheck(e, c, t, mode)
}

// lsmPtraceAccessCheck is security/security.c:security_ptrace_access_check:
// every module's hook in order, the first denial wins. An allowed answer
// is decided by the last step that passed — the dumpable step when no
// module checked anything — and never by a module that skipped the
// question (PtraceSkipper): such a module is recorded as a skip and its
// hook is not called.
func (w *World) lsmPtraceAccessCheck(e Env, c, t *Task, mode Mode) (Errno, Layer) {
	last := LayerDumpable
	for _, m := range w.LSMs {
		layer := Layer(m.Name())
		if w.Mutation.Skip&SkipCommoncap != 0 && layer == "capability" {
			e.T.Add(layer, Skip, "mutation: cap_ptrace_access_check is skipped")
			continue
		}
		if s, ok := m.(PtraceSkipper); ok {
			if why := s.PtraceSkip(c, t, mode); why != "" {
				e.T.Add(layer, Skip, why)
				continue
			}
		}
		if errno := m.PtraceAccessCheck(e, c, t, mode); errno != OK {
			return errno, layer
		}
		last = layer
	}
	return OK, last
}

// ptraceHasCap is kernel/ptrace.c:ptrace_has_cap: CAP_SYS_PTRACE in ns
// with the caller's effective set, audited unless NOAUDIT.
func (w *World) ptraceHasCap(e Env, c *Task, ns *UserNS, mode Mode) bool {
	return e.Capable(c, ns, CapSysPtrace, mode.NoAudit())
}

// stillDumpable is the dumpable step of __ptrace_may_access
// (task_still_dumpable in trees with 31e62c2ebbfd).
func (w *World) stillDumpable(e Env, c, t *Task, mode Mode) bool {
	tr := e.T
	f := w.Features
	if !f.MMUserNS {
		// Before v4.10: any non-zero dumpable value passes; no mm counts as 0;
		// the override is CAP_SYS_PTRACE in the target's credential namespace.
		if t.MM != nil && t.MM.Dumpable != SuidDumpDisable {
			if tr.On() {
				tr.Addf(LayerDumpable, Pass, "dumpable=%d (before v4.10 any non-zero value passes)", t.MM.Dumpable)
			}
			return true
		}
		ok := w.ptraceHasCap(e, c, t.Cred.UserNS, mode)
		if tr.On() {
			tr.Addf(LayerDumpable, outcome(ok), "target is not dumpable (before v4.10 a task without mm counts as such); CAP_SYS_PTRACE in %q: %v", t.Cred.UserNS.Name, ok)
		}
		return ok
	}
	if t.MM != nil {
		if t.MM.Dumpable == SuidDumpUser {
			if tr.On() {
				tr.Add(LayerDumpable, Pass, "target's mm is dumpable (SUID_DUMP_USER)")
			}
			return true
		}
		ok := w.ptraceHasCap(e, c, t.MM.UserNS, mode)
		if tr.On() {
			tr.Addf(LayerDumpable, outcome(ok), "target's mm has dumpable=%d (only 1 passes); CAP_SYS_PTRACE in mm->user_ns %q: %v", t.MM.Dumpable, t.MM.UserNS.Name, ok)
		}
		return ok
	}
	if !f.UserDumpable {
		if tr.On() {
			tr.Addf(LayerDumpable, Pass, "target has no mm: release %s skips the dumpable step (the CVE-2026-46333 behaviour)", w.Release)
		}
		return true
	}
	if t.UserDumpable {
		if tr.On() {
			tr.Add(LayerDumpable, Pass, "target has no mm; its saved user_dumpable flag is set")
		}
		return true
	}
	ok := w.ptraceHasCap(e, c, w.Init, mode)
	if tr.On() {
		tr.Addf(LayerDumpable, outcome(ok), "target has no mm and user_dumpable is clear (kernel thread or non-dumpable at exit); CAP_SYS_PTRACE in the initial namespace: %v", ok)
	}
	return ok
}

func outcome(ok bool) Outcome {
	if ok {
		return Pass
	}
	return Deny
}
