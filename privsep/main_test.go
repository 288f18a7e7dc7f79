package privsep_test

import (
	"os"
	"testing"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/privsep"
)

// envRole runs this test binary as a helper process instead of the
// tests: a compromised reader or front (attack_test.go).
const envRole = "PROCGATE_PRIVSEP_TEST_ROLE"

func TestMain(m *testing.M) {
	privsep.RunReaderIfRequested() // StartReader re-executes this binary
	proctest.RunRoleIfRequested()
	switch os.Getenv(envRole) {
	case "compromised-reader":
		os.Exit(compromisedReaderRole())
	case "compromised-front":
		os.Exit(compromisedFrontRole())
	}
	os.Exit(m.Run())
}
