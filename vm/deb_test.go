package vm

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExtractTarKeepsOnlyWantedFiles(t *testing.T) {
	dir := t.TempDir()
	// A deb's data archive as dpkg-deb --fsys-tarfile gives it.
	var tb bytes.Buffer
	writeTar(t, &tb, map[string]string{"./boot/vmlinuz-6.1.0-56-amd64": "kernel", "./lib/modules/x.ko": "module", "../evil": "no"})
	names, err := extractTar(&tb, dir, func(n string) bool { return strings.HasPrefix(n, "boot/") || n == "../evil" })
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "boot/vmlinuz-6.1.0-56-amd64" {
		t.Fatalf("extracted %v", names)
	}
	b, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil || string(b) != "kernel" {
		t.Errorf("content %q, %v", b, err)
	}
}

func writeTar(t *testing.T, w *bytes.Buffer, files map[string]string) {
	t.Helper()
	tw := tar.NewWriter(w)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildDeb builds a .deb with dpkg-deb from files (name -> content), its
// data member compressed with compressor (gzip, xz or zstd).
func buildDeb(t *testing.T, pkg, compressor string, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("!!!!!!!! SKIPPED: dpkg-deb is not installed (Debian's dpkg); this test did NOT run !!!!!!!!")
	}
	root := filepath.Join(t.TempDir(), pkg)
	control := "Package: " + pkg + "\nVersion: 1.2-3\nArchitecture: amd64\nMaintainer: procgate tests <tests@example.org>\nDescription: test package\n"
	files["DEBIAN/control"] = control
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := root + ".deb"
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+compressor, "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, out)
	}
	return deb
}

// preparePackages extracts the kernel image and the AppArmor files (and
// nothing else) from real .deb files, whatever their data compression.
func TestPreparePackages(t *testing.T) {
	for _, z := range []string{"gzip", "xz", "zstd"} {
		t.Run(z, func(t *testing.T) {
			kdeb := buildDeb(t, "linux-image-test", z, map[string]string{
				"boot/vmlinuz-6.1.0-99-amd64": "bzImage", "lib/modules/6.1.0-99-amd64/x.ko": "ko",
				"boot/config-6.1.0-99-amd64": "CONFIG_SECURITY_YAMA=y\n# CONFIG_SECURITY_LANDLOCK is not set\nCONFIG_LSM=\"yama,apparmor\"\n",
			})
			adeb := buildDeb(t, "apparmor", z, map[string]string{
				"sbin/apparmor_parser": "parser", "etc/apparmor/parser.conf": "conf", "etc/apparmor.d/abi/3.0": "abi",
				"usr/share/apparmor-features/features": "feat", "etc/apparmor.d/usr.bin.man": "not wanted",
			})
			work := t.TempDir()
			p, err := preparePackages(work, work, kdeb, adeb)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(p.kernelImg); err != nil || string(b) != "bzImage" || filepath.Base(p.kernelImg) != "vmlinuz-6.1.0-99-amd64" {
				t.Errorf("kernel image %s: %q, %v", p.kernelImg, b, err)
			}
			if p.desc != "kernel linux-image-test 1.2-3, apparmor 1.2-3" {
				t.Errorf("desc %q", p.desc)
			}
			if !p.cfg.has("yama") || p.cfg.has("landlock") || p.cfg.lsm != "yama,apparmor" {
				t.Errorf("kernel config %+v", p.cfg)
			}
			var got []string
			err = filepath.WalkDir(p.aaRoot, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(p.aaRoot, path)
					got = append(got, filepath.ToSlash(rel))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"etc/apparmor.d/abi/3.0", "etc/apparmor/parser.conf", appArmorParser, "usr/share/apparmor-features/features"}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("apparmor files %v, want %v", got, want)
			}
			if _, err := os.Stat(filepath.Join(work, "kernel", "lib")); err == nil {
				t.Error("the kernel's modules were extracted too")
			}
		})
	}
	// A kernel package without an image is refused.
	deb := buildDeb(t, "linux-headers-test", "gzip", map[string]string{"usr/src/x.h": "h"})
	if _, err := preparePackages(t.TempDir(), t.TempDir(), deb, ""); err == nil || !strings.Contains(err.Error(), "want one boot/vmlinuz-*") {
		t.Errorf("package without vmlinuz: %v", err)
	}
	if _, err := preparePackages(t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "missing.deb"), ""); err == nil || !strings.Contains(err.Error(), "missing.deb") {
		t.Errorf("missing package: %v", err)
	}
}
