package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/procgate/procgate/kernel"
)

// ParseLSMList parses /sys/kernel/security/lsm: "lockdown,capability,landlock".
func ParseLSMList(b []byte) []string {
	var out []string
	for f := range bytes.SplitSeq(trimSpace(b), []byte{','}) {
		if f = trimSpace(f); len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}

// Mount is a procfs mount as /proc/self/mountinfo describes it.
type Mount struct {
	// MountPoint is the mount's path.
	MountPoint string
	// Options are hidepid= and gid= as the model uses them.
	Options kernel.ProcOptions
	// SubsetPID is set for subset=pid mounts (no /proc/sys and friends).
	SubsetPID bool
}

// ParseMountinfo finds the procfs mount at mountPoint in the content of
// a mountinfo file (the last one wins, as the last mount on a path hides
// the others). Its hidepid= and gid= options are read from both the
// per-mount and the superblock fields; hidepid takes any spelling
// ParseHidePID accepts.
func ParseMountinfo(b []byte, mountPoint string) (Mount, bool, error) {
	var pm Mount
	found := false
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		// 22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw,hidepid=invisible,gid=4
		pre, post, ok := bytes.Cut(line, []byte(" - "))
		if !ok {
			continue
		}
		var pf [6][]byte
		n := 0
		for f := range fields(pre) {
			if n < len(pf) {
				pf[n] = f
			}
			n++
		}
		if n < 6 || unescapeMount(pf[4]) != mountPoint {
			continue
		}
		var qf [3][]byte
		m := 0
		for f := range fields(post) {
			if m < len(qf) {
				qf[m] = f
			}
			m++
		}
		if m < 3 || string(qf[0]) != "proc" {
			continue
		}
		cur := Mount{MountPoint: mountPoint}
		for _, opts := range [][]byte{pf[5], qf[2]} {
			for o := range bytes.SplitSeq(opts, []byte{','}) {
				k, v, _ := bytes.Cut(o, []byte{'='})
				switch string(k) {
				case "hidepid":
					h, err := kernel.ParseHidePID(string(v))
					if err != nil {
						return pm, false, fmt.Errorf("mountinfo: %w", err)
					}
					cur.Options.HidePID = h
				case "gid":
					g, ok := atou32(v)
					if !ok {
						return pm, false, fmt.Errorf("mountinfo: gid=%q: %w", v, ErrMalformed)
					}
					cur.Options.GID, cur.Options.HasGID = kernel.KGID(g), true
				case "subset":
					cur.SubsetPID = string(v) == "pid"
				}
			}
		}
		pm, found = cur, true
	}
	return pm, found, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) {
			if v, err := strconv.ParseUint(string(b[i+1:i+4]), 8, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

// HasMount reports whether the content of a mountinfo file lists a
// mount of type fstype at mountPoint.
func HasMount(mountinfo []byte, mountPoint, fstype string) bool {
	for line := range bytes.SplitSeq(mountinfo, []byte{'\n'}) {
		pre, post, ok := bytes.Cut(line, []byte(" - "))
		if !ok {
			continue
		}
		n := 0
		var mp []byte
		for f := range fields(pre) {
			if n == 4 {
				mp = f
			}
			n++
		}
		var fs []byte
		for f := range fields(post) {
			fs = f
			break
		}
		if unescapeMount(mp) == mountPoint && string(fs) == fstype {
			return true
		}
	}
	return false
}

// LSMFile is the file that lists the active security modules, relative
// to the sysfs root.
const LSMFile = "kernel/security/lsm"

// ReadLSMs reads the active security modules, in the kernel's order,
// from the sysfs mounted at sys ("" means /sys). It fails when securityfs
// is not mounted at <sys>/kernel/security.
func ReadLSMs(sys string) ([]string, error) {
	if sys == "" {
		sys = "/sys"
	}
	b, err := os.ReadFile(filepath.Join(sys, LSMFile))
	if err != nil {
		return nil, err
	}
	return ParseLSMList(b), nil
}

// Mountinfo reads the root's own mount table (self/mountinfo) and
// returns it with the procfs mount at the root's path (found reports
// whether there is one: a fixture tree has none).
func (r *Root) Mountinfo() (mountinfo []byte, m Mount, found bool, err error) {
	mountinfo, err = ReadFile(r.fd, "self/mountinfo", nil, 1<<24)
	if err != nil {
		return nil, Mount{}, false, fmt.Errorf("read %s/self/mountinfo: %w", r.path, err)
	}
	m, found, err = ParseMountinfo(mountinfo, r.path)
	return mountinfo, m, found, err
}
