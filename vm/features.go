package vm

import (
	"fmt"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/oracle"
	"github.com/procgate/procgate/verify"
)

// featureStat records, for one release-dependent rule (a kernel.Features
// field), the probe results that tell its two values apart: those where
// the model with the field flipped answers differently, and which of the
// two answers the kernel gave.
type featureStat struct {
	probes  int          // probe results the flag decides
	cases   map[int]bool // their cases (by result order)
	asModel int          // the kernel answered as the model predicts
	flipped int          // the kernel answered as the flipped model
}

// observeFeatures predicts the probes again with each feature flag
// flipped and counts, where the answer changes, which model the kernel
// agrees with. got are the kernel's answers, pred the model's.
func (r *report) observeFeatures(w *kernel.World, caller, target *kernel.Task, got, pred []oracle.ProbeResult) error {
	base := w.Features
	defer func() { w.Features = base }()
	for _, name := range kernel.FeatureNames {
		f := base
		p := f.Field(name)
		*p = !*p
		w.Features = f
		alt, err := verify.PredictWorld(w, caller, target, got)
		if err != nil {
			return fmt.Errorf("feature %s flipped: %w", name, err)
		}
		st := r.featureStats[name]
		if st == nil {
			st = &featureStat{cases: map[int]bool{}}
			r.featureStats[name] = st
		}
		for i := range got {
			if verify.Same(alt[i], pred[i]) {
				continue
			}
			st.probes++
			st.cases[r.cases] = true
			switch {
			case verify.Same(got[i], pred[i]):
				st.asModel++
			case verify.Same(got[i], alt[i]):
				st.flipped++
			}
		}
	}
	return nil
}

// FeatureResult is one release-dependent rule on one kernel: the value
// the model predicts for the package (upstream release plus backports),
// the value the kernel showed, and the evidence.
type FeatureResult struct {
	// Name is the scenario key (kernel.FeatureNames).
	Name string `json:"name"`
	// Predicted is the model's value for the package.
	Predicted bool `json:"predicted"`
	// Observed is "yes" or "no" when the cases that tell the values apart
	// all agree with one of them, "untested" when no case does, "mixed"
	// when some agree with each (a model error elsewhere).
	Observed string `json:"observed"`
	// Cases and Probes tell the two values apart.
	Cases  int `json:"cases"`
	Probes int `json:"probes"`
	// Backport names the distribution backport that set the prediction,
	// if any.
	Backport string `json:"backport,omitempty"`
}

// Matches reports whether the kernel showed the predicted value (an
// untested flag matches: nothing contradicts it).
func (f FeatureResult) Matches() bool {
	return f.Observed == "untested" || f.Observed == yesNo(f.Predicted)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// featureResults merges the feature observations of a kernel's boots.
func featureResults(reps []*report) []FeatureResult {
	var out []FeatureResult
	var f kernel.Features
	var backports []kernel.Backport
	for _, r := range reps {
		if r.featureStats != nil {
			f, backports = r.features, r.backports
			break
		}
	}
	for _, name := range kernel.FeatureNames {
		fr := FeatureResult{Name: name, Predicted: *f.Field(name)}
		asModel, flipped := 0, 0
		for _, r := range reps {
			st := r.featureStats[name]
			if st == nil {
				continue
			}
			fr.Cases += len(st.cases)
			fr.Probes += st.probes
			asModel += st.asModel
			flipped += st.flipped
		}
		switch {
		case fr.Probes == 0:
			fr.Observed = "untested"
		case flipped == 0 && asModel > 0:
			fr.Observed = yesNo(fr.Predicted)
		case asModel == 0 && flipped > 0:
			fr.Observed = yesNo(!fr.Predicted)
		default:
			fr.Observed = "mixed"
		}
		for _, b := range backports {
			if b.Feature == name {
				fr.Backport = b.Change
			}
		}
		out = append(out, fr)
	}
	return out
}

// featureLine renders the observations for a summary line: the
// mismatches, or that all matched.
func featureLine(fs []FeatureResult) string {
	var bad, tested []string
	for _, f := range fs {
		if f.Observed != "untested" {
			tested = append(tested, f.Name+"="+f.Observed)
		}
		if !f.Matches() {
			bad = append(bad, fmt.Sprintf("%s observed %s, predicted %s", f.Name, f.Observed, yesNo(f.Predicted)))
		}
	}
	if len(bad) > 0 {
		return "features DIFFER: " + strings.Join(bad, "; ")
	}
	return fmt.Sprintf("features as predicted (%s)", strings.Join(tested, " "))
}

// moduleStat counts the cases of one kind: the security module (or rule
// set) that decides them.
type moduleStat struct {
	cases, disagree, refused, predictErrs int
}

// Module names in summaries: the case kinds a kernel's boots count.
const (
	ModYama     = "yama"     // no labels, no Landlock: DAC, commoncap and Yama at scopes 0-3
	ModAppArmor = "apparmor" // a prober or target under an AppArmor profile
	ModSELinux  = "selinux"  // a prober or target in an SELinux domain
	ModLandlock = "landlock" // a Landlock layout
	ModFeatures = "features" // the feature cases (oracle.VMFeatureCases)
)

// module returns the counters of the case's kind.
func (r *report) module(res oracle.VMRes) *moduleStat {
	c := res.Case
	name := ModYama
	switch {
	case res.Step == "features":
		name = ModFeatures
	case c.Landlock != "" && c.Landlock != oracle.LandlockNone:
		name = ModLandlock
	case c.Prober.AppArmor != "" || c.Target.AppArmor != "":
		name = ModAppArmor
	case c.Prober.SELinux != "" || c.Target.SELinux != "":
		name = ModSELinux
	}
	m := r.modules[name]
	if m == nil {
		m = &moduleStat{}
		r.modules[name] = m
	}
	return m
}
