package oracle

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/kernel/lsm/apparmor"
)

func TestVMDefaultPlan(t *testing.T) {
	plan := VMDefaultPlan()
	pol, err := apparmor.Parse(plan.AppArmor)
	if err != nil {
		t.Fatalf("the model cannot parse the VM profiles: %v", err)
	}
	if !strings.HasPrefix(plan.AppArmor, "abi <abi/3.0>,") {
		t.Error("the profiles must pin abi 3.0 (ptrace mediation)")
	}
	total, aa, yama := 0, 0, 0
	sawScope3 := false
	for _, s := range plan.Steps {
		if sawScope3 && s.YamaScope != 3 {
			t.Errorf("step %s at scope %d after a scope-3 step: scope 3 cannot be lowered", s.Name, s.YamaScope)
		}
		sawScope3 = sawScope3 || s.YamaScope == 3
		for i := range s.Cases {
			c := &s.Cases[i]
			total++
			if err := c.Validate(); err != nil {
				t.Errorf("%s #%d %q: %v", s.Name, i, c.Name, err)
			}
			for _, p := range []string{c.Prober.AppArmor, c.Target.AppArmor} {
				if p != "" && pol.Profile(p) == nil {
					t.Errorf("%s #%d %q: profile %q is not in the plan's policy", s.Name, i, c.Name, p)
				}
			}
			if c.Prober.AppArmor != "" || c.Target.AppArmor != "" {
				aa++
			} else {
				yama++
			}
		}
	}
	if !sawScope3 {
		t.Error("no step at Yama scope 3")
	}
	if total < 300 {
		t.Errorf("%d cases, the VM suite promises at least 300", total)
	}
	t.Logf("%d cases: %d with an AppArmor profile, %d without", total, aa, yama)
	// The plan travels as JSON into the initramfs.
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	var back VMPlan
	if err := json.Unmarshal(b, &back); err != nil || len(back.Steps) != len(plan.Steps) || back.AppArmor != plan.AppArmor {
		t.Fatalf("plan does not survive JSON: %v", err)
	}
}

func TestAppArmorLabels(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"", "", true},
		{"", "unconfined", true},
		{"", "pg-rt (enforce)", false},
		{"pg-rt", "pg-rt (enforce)", true},
		{"pg-rt", "pg-rt (complain)\n", true},
		{"pg-rt", "pg-rtx (enforce)", false},
		{"pg-rt", "unconfined", false},
		{"pg-rt", "", false},
	} {
		if ok := appArmorMatches(tc.want, tc.got); ok != tc.ok {
			t.Errorf("appArmorMatches(%q, %q) = %v", tc.want, tc.got, ok)
		}
	}
	for _, name := range []string{"", "pg-rt", "/usr/bin/foo"} {
		if err := validProfileName(name); err != nil {
			t.Errorf("validProfileName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"unconfined", "a b", "a\nb"} {
		if err := validProfileName(name); err == nil {
			t.Errorf("validProfileName(%q) accepted", name)
		}
	}
	c := Case{Prober: confined(User(1, 1), "p"), Target: User(1, 1), Relation: RelParent}
	if err := c.Validate(); err == nil {
		t.Error("prober-is-parent with a profile accepted")
	}
}

// Without AppArmor a confined case cannot run faithfully: it must be
// refused, never run unconfined.
func TestAppArmorCaseRefusedWithoutAppArmor(t *testing.T) {
	r := needRunner(t)
	if slices.Contains(r.Profile().LSMs, "apparmor") {
		t.Skip("!!!!!!!! SKIPPED: AppArmor is active here; the VM suite (make verify-vm) covers confined cases !!!!!!!!")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := r.Run(ctx, []Case{
		{Name: "confined prober", Prober: confined(User(1000, 1000), "pg-rt"), Target: User(1000, 1000), Probes: []Probe{ProbeMaps}},
		{Name: "confined target", Prober: User(1000, 1000), Target: confined(User(1000, 1000), "pg-rt"), Probes: []Probe{ProbeMaps}},
		{Name: "unconfined", Prober: User(1000, 1000), Target: User(1000, 1000), Probes: []Probe{ProbeMaps}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if res[i].Err == nil || !strings.Contains(res[i].Error, "apparmor") {
			t.Errorf("case %q: err %v, want a refusal naming apparmor", res[i].Name, res[i].Err)
		}
	}
	if res[2].Err != nil {
		t.Errorf("unconfined case refused: %v", res[2].Err)
	}
}
