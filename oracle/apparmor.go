package oracle

import (
	"fmt"
	"strings"
)

// validProfileName reports whether name can be given to
// attr/apparmor/exec as "exec <name>": empty (unconfined) or a profile
// name without white space or control characters.
func validProfileName(name string) error {
	if name == "" {
		return nil
	}
	if name == "unconfined" {
		return fmt.Errorf("apparmor profile %q: leave the field empty for an unconfined process", name)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("apparmor profile %q: a name without spaces or control characters is required", name)
	}
	return nil
}

// appArmorMatches reports whether attr/apparmor/current (got) shows the
// requested profile (want; empty is unconfined). got is "unconfined" or
// "name (mode)"; it is empty when AppArmor is not active, which matches
// only an unconfined request.
func appArmorMatches(want, got string) bool {
	got = strings.TrimSpace(got)
	if want == "" {
		return got == "" || got == "unconfined"
	}
	name, _, _ := strings.Cut(got, " (")
	return name == want
}
