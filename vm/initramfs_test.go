package vm

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/oracle"
)

// hostDynamic is a dynamically linked, position-independent executable of
// this host (Debian builds its binaries as PIE).
const hostDynamic = "/bin/sh"

// checkInit accepts any ELF executable, static or dynamic, PIE or not,
// and refuses what the kernel cannot execute.
func TestCheckInit(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	notELF := filepath.Join(t.TempDir(), "init.sh")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{self, true},        // this test binary, whatever its build
		{hostDynamic, true}, // dynamic PIE: interpreter and libraries go along
		{notELF, false},
		{filepath.Join(t.TempDir(), "missing"), false},
	} {
		if err := checkInit(tc.path); (err == nil) != tc.ok {
			t.Errorf("checkInit(%s) = %v, want ok %v", tc.path, err, tc.ok)
		}
	}
}

// initramfsEntries reads back the gzip'd archive writeInitramfs wrote.
func initramfsEntries(t *testing.T, path string) map[string][2]string {
	t.Helper()
	return cpioEntries(t, gunzipFile(t, path))
}

// gunzipFile returns the content of the gzip'd file at path.
func gunzipFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A dynamically linked init goes in with its ELF interpreter (at the path
// PT_INTERP names) and every library it needs, each once, next to the
// plan and the console device.
func TestInitramfsDynamicInit(t *testing.T) {
	libs, err := sharedLibs(hostDynamic)
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) < 2 || !strings.Contains(libs[0], "ld-linux") {
		t.Fatalf("sharedLibs(%s) = %v, want the interpreter first and libc", hostDynamic, libs)
	}
	plan := oracle.VMPlan{Steps: []oracle.VMStep{{Name: "yama1", YamaScope: 1, Cases: []oracle.Case{{Name: "c"}}}}}
	dst := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	if err := writeInitramfs(dst, plan, "", hostDynamic); err != nil {
		t.Fatal(err)
	}
	got := initramfsEntries(t, dst)
	bin, err := os.ReadFile(hostDynamic)
	if err != nil {
		t.Fatal(err)
	}
	if got["init"] != [2]string{"100755", string(bin)} {
		t.Errorf("init is not %s", hostDynamic)
	}
	for _, l := range libs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if e := got[strings.TrimPrefix(l, "/")]; e[1] != string(b) || e[0] != "100755" {
			t.Errorf("%s missing or wrong in the initramfs (mode %s, %d bytes)", l, e[0], len(e[1]))
		}
	}
	if got["dev/console"][0] != "20600" {
		t.Errorf("dev/console: %v", got["dev/console"])
	}
	var back oracle.VMPlan
	if err := json.Unmarshal([]byte(got[strings.TrimPrefix(oracle.VMPlanPath, "/")][1]), &back); err != nil || len(back.Steps) != 1 || back.Steps[0].Name != "yama1" {
		t.Errorf("plan %+v, %v", back, err)
	}
	// A plan with AppArmor profiles needs the parser.
	plan.AppArmor = "profile x {}"
	if err := writeInitramfs(dst, plan, "", hostDynamic); err == nil || !strings.Contains(err.Error(), "--apparmor-deb") {
		t.Errorf("AppArmor plan without the package: %v", err)
	}
}

// The AppArmor files and the parser's libraries go in; a library both
// the init and the parser need goes in once (cpioEntries refuses
// duplicates).
func TestInitramfsAppArmor(t *testing.T) {
	aa := t.TempDir()
	files := map[string]string{
		"etc/apparmor/parser.conf":             "conf",
		"etc/apparmor.d/abi/3.0":               "abi",
		"usr/share/apparmor-features/features": "feat",
	}
	for name, data := range files {
		p := filepath.Join(aa, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parser, err := os.ReadFile(hostDynamic) // stands in for apparmor_parser: a dynamic ELF
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(aa, "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(aa, appArmorParser), parser, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	if err := writeInitramfs(dst, oracle.VMPlan{AppArmor: "profile x {}"}, aa, hostDynamic); err != nil {
		t.Fatal(err)
	}
	got := initramfsEntries(t, dst)
	for name, data := range files {
		if got[name] != [2]string{"100644", data} {
			t.Errorf("%s = %v", name, got[name])
		}
	}
	if got[appArmorParser][0] != "100755" || !bytes.Equal([]byte(got[appArmorParser][1]), parser) {
		t.Errorf("%s missing or not executable", appArmorParser)
	}
}
