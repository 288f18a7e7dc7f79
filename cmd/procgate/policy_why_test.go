package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

func TestPolicyWhy(t *testing.T) {
	path := writePolicy(t, "subject s { uid 1000; }\ntarget a {}\nallow s a : attach;\nprotect a : attach { mem };\n")
	src, _ := os.ReadFile(path)
	f, err := policy.Parse(path, src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.CompileWith(policy.MapResolver{}, f)
	if err != nil {
		t.Fatal(err)
	}
	e := p.Explain(&policy.Subject{Process: policy.Process{UID: 1000, Comm: "gdb"}}, &policy.Target{Process: policy.Process{UID: 1000}, Dumpable: true}, 0, policy.ItemMem)
	out, code := runPolicyCmd(t, "why", e.AuditLine())
	if code != 0 || !strings.Contains(out, "protect a : attach { mem };") || !strings.Contains(out, "denied attach:mem") {
		t.Errorf("why: exit %d\n%s", code, out)
	}
	// The policy changed since: the rule is gone from that line.
	if err := os.WriteFile(path, []byte("\n\n\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = runPolicyCmd(t, "why", e.AuditLine())
	if code != 1 || !strings.Contains(out, "the policy changed") {
		t.Errorf("why after change: exit %d\n%s", code, out)
	}
	_, code = runPolicyCmd(t, "why", "not an audit line")
	if code != 2 {
		t.Errorf("why garbage: exit %d", code)
	}
}

// why reads every shape of record: behind a syslog prefix, JSON, a
// summary; a line that is no record is refused with its column.
func TestPolicyWhyRecords(t *testing.T) {
	path := writePolicy(t, "subject s { uid 1000; }\ntarget a {}\nallow s a : read { io } when same_uid;\n")
	decision := audit.Record{Time: time.UnixMilli(1795867200316), Serial: 12, Access: "read", Item: "io",
		Subject: audit.Process{PID: 10, Comm: "top", UID: 1000}, Target: audit.Process{PID: 20, Comm: "ssh agent", UID: 0},
		Rule: "none(allow@" + path + ":3)", Generation: 4, Reason: "no allow rule grants read:io of this target to this subject (default deny)"}
	summary := audit.Record{Time: time.UnixMilli(1795867201000), Serial: 13, Access: "read", Item: "io",
		Subject: audit.Process{UID: 1000}, Suppressed: 41, Generation: 4}
	want := []string{
		"record 12, 2026-11-28T12:00:00.316Z",
		`denied read:io: pid 10 ("top", uid 1000) on pid 20 ("ssh agent", uid 0), policy generation 4`,
		"no allow rule applied (default deny)",
		"nearest allow rule that did not apply allow@" + path + ":3: allow s a : read { io } when same_uid;",
	}
	for _, tc := range []struct {
		name, line string
		want       []string
	}{
		{"AVC behind a syslog prefix", "Nov 28 12:00:00 host procgate[812]: " + string(audit.AppendAVC(nil, &decision)), want},
		{"JSON with its reason", string(audit.AppendJSON(nil, &decision)), append(want, "reason: no allow rule grants read:io")},
		{"AVC summary", string(audit.AppendAVC(nil, &summary)), []string{"denied read:io: 41 more decision(s) for uid 1000 on uid 0 not logged (rate limit), policy generation 4", "a summary names no rule"}},
		{"JSON summary", "procgate[1]: " + string(audit.AppendJSON(nil, &summary)), []string{"41 more decision(s)"}},
		{"AVC summary of a caller", "audit(1795867201.000:14): broker: denied { * } for uid=1000 suppressed=4180 gen=4",
			[]string{"denied: 4180 more decision(s) of uid 1000, on any process and item, not logged (rate limit: the caller's burst), policy generation 4", "a summary names no rule"}},
		{"JSON summary of the budget", `{"time":"2026-11-28T12:00:01Z","serial":15,"result":"granted","access":"*","item":"*","suppressed":12,"gen":4}`,
			[]string{"granted: 12 more decision(s) of any caller, on any process and item, not logged (rate limit: the log's budget, shared by all callers)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runPolicyCmd(t, "why", tc.line)
			if code != 0 {
				t.Errorf("why %q: exit %d\n%s", tc.line, code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("why %q lacks %q:\n%s", tc.line, w, out)
				}
			}
		})
	}
	for _, tc := range []struct{ line, want string }{
		{"procgate: denied { read:io } for pid=1", "column 1: no audit record"},
		{"broker: denied { read:envron } for uid=1 tuid=2 suppressed=3 gen=1", `column 18: access "read:envron": unknown item "envron" (did you mean "environ"?)`},
		{`broker: denied { read:io } for pid=1 comm="a uid=2`, "column 43: unterminated quoted value"},
	} {
		out, code := runPolicyCmd(t, "why", tc.line)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("why %q: exit %d, want 2 and …%s…\n%s", tc.line, code, tc.want, out)
		}
	}
}

// TestPolicyWhyBrokerLog: a gate with a real policy decides for real
// processes — a caller and a target of two other users, the target's
// command name holding a space — and writes its audit log, AVC-shaped
// and JSON, with rate-limit summaries and without any value read;
// `policy why` explains every line the broker wrote, behind a syslog
// prefix too, naming the rules that decided with their text.
func TestPolicyWhyBrokerLog(t *testing.T) {
	testenv.RequireRoot(t, "a caller and a target of other uids")
	const uidCaller, uidTarget = 65533, 65532
	dir, err := os.MkdirTemp("", "procgate-why-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	polPath := filepath.Join(dir, "p.pol")
	src := fmt.Sprintf(`subject readers { uid %d; }
target others { uid %d; }
allow readers others : read { status io } when same_uid;
allow readers others : read { status };
auditallow readers others : read { status };
protect others : attach;
deny readers others : read { maps };
`, uidCaller, uidTarget)
	if err := os.WriteFile(polPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(polPath, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	caller := startAs(t, uidCaller, "sleep")
	target := startAs(t, uidTarget, copyBinary(t, dir, "sleep", "sl eep"))
	items := []gate.Item{policy.ItemStatus, policy.ItemIO, policy.ItemAttach, policy.ItemMaps, policy.ItemEnviron}
	rules := map[string][]string{ // what why says of each item's record
		"read:status":  {"rule allow@" + polPath + ":4: allow readers others : read { status };", "rule auditallow@" + polPath + ":5: auditallow readers others : read { status };"},
		"read:io":      {"no allow rule applied", "nearest allow rule that did not apply allow@" + polPath + ":3: allow readers others : read { status io } when same_uid;"},
		"attach":       {"rule protect@" + polPath + ":6: protect others : attach;"},
		"read:maps":    {"rule deny@" + polPath + ":7: deny readers others : read { maps };"},
		"read:environ": {"no allow rule applied (default deny)"},
	}
	for _, format := range []gate.AuditFormat{gate.AuditAVC, gate.AuditJSON} {
		t.Run(format.String(), func(t *testing.T) {
			logPath := filepath.Join(dir, "audit-"+format.String()+".log")
			a, err := gate.NewAuditor(gate.AuditConfig{Path: logPath, Format: format, Burst: len(items), Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			g, err := gate.New(gate.Config{Policy: pol, Audit: a})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			c, err := g.NewCaller(caller, -1, uidCaller, uidCaller, "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for range 2 { // the second round is rate-limited: one summary per result
				req := &gate.Request{PIDs: []int{target}, Items: items}
				err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error {
					if r.Denial != nil {
						return fmt.Errorf("pid %d: %v", r.PID, r.Denial)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			lines := readLines(t, logPath)
			if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "hunter2") || strings.Contains(string(log), "68756E74657232") {
				t.Errorf("the audit log holds environment contents:\n%s", log)
			}
			if len(lines) != len(items)+2 {
				t.Fatalf("%d records, want %d decisions and 2 summaries:\n%s", len(lines), len(items), strings.Join(lines, "\n"))
			}
			seen := map[string]bool{}
			for _, line := range lines {
				out, code := runPolicyCmd(t, "why", "Nov 28 12:00:00 host procgate[812]: "+line)
				if code != 0 {
					t.Errorf("why %q: exit %d\n%s", line, code, out)
					continue
				}
				rec, err := audit.Parse(line)
				if err != nil {
					t.Fatal(err)
				}
				if rec.Generation != pol.Generation() {
					t.Errorf("%q: generation %d, want %d", line, rec.Generation, pol.Generation())
				}
				access := audit.AccessName(rec.Access, rec.Item)
				if rec.IsSummary() {
					if !strings.Contains(out, fmt.Sprintf("more decision(s) of uid %d, on any process and item, not logged", uidCaller)) {
						t.Errorf("why %q:\n%s", line, out)
					}
					continue
				}
				seen[access] = true
				head := fmt.Sprintf(`%s %s: pid %d ("sleep", uid %d) on pid %d ("sl eep", uid %d), policy generation %d`,
					rec.Result(), access, caller, uidCaller, target, uidTarget, pol.Generation())
				for _, w := range append(rules[access], head) {
					if !strings.Contains(out, w) {
						t.Errorf("why %q lacks %q:\n%s", line, w, out)
					}
				}
			}
			if len(seen) != len(items) {
				t.Errorf("records for %v, want one for each of %d items", seen, len(items))
			}
		})
	}
}

// secret is in the environment of the processes startAs starts: no audit
// record may carry it.
const secret = "hunter2-in-the-environment"

// startAs starts `bin 600` as uid (and gid), with secret in its
// environment, and returns its pid once it runs bin.
func startAs(t *testing.T, uid uint32, bin string) int {
	t.Helper()
	cmd := exec.Command(bin, "600")
	cmd.Env = []string{"PROCGATE_SECRET=" + secret}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	want := filepath.Base(bin)
	for i := 0; ; i++ {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if strings.TrimSpace(string(comm)) == want {
			return cmd.Process.Pid
		}
		if i == 500 {
			t.Fatalf("pid %d runs %q, not %q", cmd.Process.Pid, comm, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// copyBinary copies the program name (found in PATH) to dir/as.
func copyBinary(t *testing.T, dir, name, as string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, as)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// readLines returns the lines of a file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
