package gate

// SetPIDTranslation makes the gate use the kernel's pid translation (on)
// or its scan mode (off, as on kernels before Linux 6.11) for the
// callers it identifies from then on: both are tested on any kernel
// that has the translation.
func SetPIDTranslation(g *Gate, on bool) { g.pidTranslation = on }

// PIDTranslation reports whether the gate found the kernel's pid
// translation.
func PIDTranslation(g *Gate) bool { return g.pidTranslation }
