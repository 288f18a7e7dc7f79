package vm

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/procgate/procgate/oracle"
)

// appArmorParser is the parser's path in the apparmor package and in the
// initramfs (the VM's init runs /sbin/apparmor_parser).
const appArmorParser = "sbin/apparmor_parser"

// writeInitramfs builds the VM's initramfs at dst: initBin as /init (with
// its ELF interpreter and shared libraries when it is dynamically linked),
// the plan, /dev/console, and, when the plan loads AppArmor profiles,
// apparmor_parser with its shared libraries, abi files and feature file
// from aaRoot.
func writeInitramfs(dst string, plan oracle.VMPlan, aaRoot, initBin string) error {
	if err := checkInit(initBin); err != nil {
		return err
	}
	bin, err := os.ReadFile(initBin)
	if err != nil {
		return err
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	if plan.AppArmor != "" && aaRoot == "" {
		return errors.New("the plan loads AppArmor profiles: give --apparmor-deb")
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := newCPIO(zw)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "root"} {
		c.dir(d)
	}
	c.entry("dev/console", cpioChr|0o600, 5, 1, nil)
	c.file("init", 0o755, bin)
	libs := map[string]bool{}
	if err := addLibs(c, libs, initBin); err != nil {
		return fmt.Errorf("init binary's libraries: %w", err)
	}
	c.file(strings.TrimPrefix(oracle.VMPlanPath, "/"), 0o644, planJSON)
	if plan.AppArmor != "" {
		if err := addAppArmor(c, libs, aaRoot); err != nil {
			return err
		}
	}
	if err := c.close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// addLibs adds the interpreter and shared libraries bin needs, each once
// (written records what the archive already holds).
func addLibs(c *cpioWriter, written map[string]bool, bin string) error {
	libs, err := sharedLibs(bin)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if written[l] {
			continue
		}
		b, err := os.ReadFile(l)
		if err != nil {
			return err
		}
		c.file(strings.TrimPrefix(l, "/"), 0o755, b)
		written[l] = true
	}
	return nil
}

// addAppArmor adds the parser, its configuration, abi and feature files,
// and the shared libraries it needs (resolved on this host, which runs
// the same distribution release as the package).
func addAppArmor(c *cpioWriter, written map[string]bool, root string) error {
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		perm := uint32(0o644)
		if filepath.ToSlash(rel) == appArmorParser {
			perm = 0o755
		}
		c.file(filepath.ToSlash(rel), perm, b)
		return nil
	})
	if err != nil {
		return err
	}
	if err := addLibs(c, written, filepath.Join(root, appArmorParser)); err != nil {
		return fmt.Errorf("apparmor_parser's libraries: %w", err)
	}
	return nil
}
