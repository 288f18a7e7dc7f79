package vm

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// libDirs are where sharedLibs looks for DT_NEEDED libraries (glibc's
// trusted directories on Debian amd64).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// checkInit refuses a file the kernel cannot execute as init: anything
// but an ELF executable (ET_EXEC, or ET_DYN for PIE). A dynamically linked
// one is fine: its interpreter and libraries go into the initramfs with it
// (see sharedLibs).
func checkInit(path string) error {
	ef, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("init binary %s: %w", path, err)
	}
	defer ef.Close()
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("init binary %s is %v, not an executable", path, ef.Type)
	}
	return nil
}

// sharedLibs returns the ELF interpreter and every library bin needs,
// recursively, as paths on this host; none for a static binary. The
// libraries are looked up in libDirs, so the host must run the
// distribution release the binary was built for (for procgate: this
// host; for apparmor_parser: the package's release).
func sharedLibs(bin string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	var walk func(file string) error
	walk = func(file string) error {
		ef, err := elf.Open(file)
		if err != nil {
			return err
		}
		defer ef.Close()
		for _, p := range ef.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return fmt.Errorf("%s: PT_INTERP: %w", file, err)
			}
			if interp := strings.TrimRight(string(b), "\x00"); !seen[interp] {
				seen[interp] = true
				out = append(out, interp)
			}
		}
		needed, err := ef.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: DT_NEEDED: %w", file, err)
		}
		for _, n := range needed {
			found := ""
			for _, d := range libDirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, not found in %v", file, n, libDirs)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(bin); err != nil {
		return nil, err
	}
	return out, nil
}
