package vm

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// extractDeb extracts the regular files of a .deb whose names (without
// "./") keep accepts into dir, and returns their names. It reads the data
// archive through dpkg-deb --fsys-tarfile, which unpacks the ar container
// and the data member's compression (gz, xz or zstd).
func extractDeb(deb, dir string, keep func(string) bool) ([]string, error) {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dpkg-deb (is dpkg installed?): %w", err)
	}
	names, terr := extractTar(pipe, dir, keep)
	_, _ = io.Copy(io.Discard, pipe)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, strings.TrimSpace(errb.String()))
	}
	if terr != nil {
		return names, fmt.Errorf("%s: %w", deb, terr)
	}
	return names, nil
}

// extractTar extracts the regular files of a tar stream whose names keep
// accepts into dir. Names that would leave dir ("../x", absolute) are
// skipped; links and devices are never created.
func extractTar(r io.Reader, dir string, keep func(string) bool) ([]string, error) {
	tr := tar.NewReader(r)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		if h.Typeflag != tar.TypeReg || !keep(name) || !filepath.IsLocal(name) {
			continue
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return names, err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o644)
		if err != nil {
			return names, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return names, fmt.Errorf("%s: %w", name, err)
		}
		names = append(names, name)
	}
}

// debDesc returns "package version" from the .deb's control file, or its
// file name.
func debDesc(deb string) string {
	out, err := exec.Command("dpkg-deb", "-f", deb, "Package", "Version").Output()
	if err != nil {
		return filepath.Base(deb)
	}
	var parts []string
	for line := range strings.Lines(string(out)) {
		if _, v, ok := strings.Cut(line, ": "); ok {
			parts = append(parts, strings.TrimSpace(v))
		}
	}
	return strings.Join(parts, " ")
}

// packages are the extracted packages a boot needs.
type packages struct {
	kernelImg string       // boot/vmlinuz-*
	cfg       kernelConfig // boot/config-* (zero when the package has none)
	aaRoot    string       // the AppArmor files, "" without --apparmor-deb
	kernel    string       // "linux-image-… 6.1.x-y"
	desc      string       // "kernel linux-image-… 6.1.x-y, apparmor 3.0.8-3"
}

// preparePackages extracts the kernel image and configuration into
// KWORK/kernel and the AppArmor userland into WORK/apparmor, and
// describes the packages.
func preparePackages(work, kwork, kernelDeb, apparmorDeb string) (packages, error) {
	kdir := filepath.Join(kwork, "kernel")
	if err := os.RemoveAll(kdir); err != nil {
		return packages{}, err
	}
	names, err := extractDeb(kernelDeb, kdir, func(name string) bool {
		return strings.HasPrefix(name, "boot/vmlinuz-") || strings.HasPrefix(name, "boot/config-")
	})
	if err != nil {
		return packages{}, err
	}
	var images, configs []string
	for _, n := range names {
		if strings.HasPrefix(n, "boot/vmlinuz-") {
			images = append(images, n)
		} else {
			configs = append(configs, n)
		}
	}
	if len(images) != 1 {
		return packages{}, fmt.Errorf("%s: want one boot/vmlinuz-*, found %v", kernelDeb, images)
	}
	p := packages{kernelImg: filepath.Join(kdir, images[0]), kernel: debDesc(kernelDeb)}
	p.desc = "kernel " + p.kernel
	if len(configs) == 1 {
		if p.cfg, err = readKernelConfig(filepath.Join(kdir, configs[0])); err != nil {
			return packages{}, err
		}
	}
	if apparmorDeb != "" {
		p.aaRoot = filepath.Join(work, "apparmor")
		if _, err := extractDeb(apparmorDeb, p.aaRoot, func(name string) bool {
			return name == appArmorParser || name == "etc/apparmor/parser.conf" ||
				strings.HasPrefix(name, "etc/apparmor.d/abi/") || strings.HasPrefix(name, "usr/share/apparmor-features/")
		}); err != nil {
			return packages{}, err
		}
		p.desc += ", " + debDesc(apparmorDeb)
	}
	return p, nil
}
