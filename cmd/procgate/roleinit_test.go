package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRoleStartsEarly runs this binary as an oracle role process (a role
// it does not know, so that it exits at once) with the runtime's
// initialisation trace: the role must run from package roleinit's
// initialiser, before packages that only the command line needs (net/http
// for the daemons' metrics) are initialised, and exit 2 naming the role.
func TestRoleStartsEarly(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "PROCGATE_ORACLE_ROLE=no-such-role", "PROCGATE_ORACLE_SPEC={}")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("role process: %v, want exit status 2\n%s", err, out)
	}
	trace := string(out)
	if !strings.Contains(trace, `unknown oracle role "no-such-role"`) {
		t.Errorf("role process did not reach the role dispatch:\n%s", trace)
	}
	if !strings.Contains(trace, "init github.com/procgate/procgate/oracle ") {
		t.Errorf("no init trace for the oracle package (GODEBUG=inittrace=1 ignored?):\n%s", trace)
	}
	if strings.Contains(trace, "init net/http ") {
		t.Errorf("net/http was initialised before the role ran: roles pay for the command line's packages\n%s", trace)
	}
}
