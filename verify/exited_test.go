package verify

import (
	"context"
	"testing"
	"time"

	"github.com/procgate/procgate/oracle"
)

// TestFeatureCasesAgree runs the VM's feature cases (oracle.VMFeatureCases:
// zombie targets and CAP_PERFMON callers) on the running kernel and
// requires the model to agree; with a zombie, the probes that read the
// target's mm, files or fs answer differently from a live target.
func TestFeatureCasesAgree(t *testing.T) {
	v := needVerifier(t)
	cases := oracle.VMFeatureCases()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := v.Run(ctx, cases, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	if !rep.OK() {
		t.Errorf("the model disagrees with the running kernel on the feature cases (or cases were refused)")
	}
	zombies := 0
	for i, c := range cases {
		if !c.TargetExits || rep.Results[i].Error != "" {
			continue
		}
		zombies++
		for _, p := range rep.Results[i].Probes {
			if p.Probe == oracle.ProbeCwd && p.Result != "ENOENT" && p.Result != "EACCES" {
				t.Errorf("%s: cwd of a zombie answered %s: was the target alive?", c.Name, p.Result)
			}
		}
	}
	if zombies == 0 {
		t.Error("no exited-target case ran")
	}
}
