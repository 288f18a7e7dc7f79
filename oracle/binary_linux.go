package oracle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// prepareBinary returns a path to this executable that every uid can read
// and execute (P8: exec of an unreadable binary makes the process
// non-dumpable, fs/exec.c:would_dump), copying it into a fresh 0755
// directory when needed; cleanup removes the copy. Any build will do:
// static or dynamically linked, PIE or not (see vmMarker).
func prepareBinary() (path string, cleanup func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("find own executable: %w", err)
	}
	if worldExecutable(exe) {
		return exe, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "procgate-oracle-")
	if err != nil {
		return "", nil, fmt.Errorf("copy executable: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy executable: %w", err)
	}
	path = filepath.Join(dir, filepath.Base(exe))
	if err := copyFile(exe, path); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy executable to %s: %w", path, err)
	}
	if !worldExecutable(path) {
		cleanup()
		return "", nil, fmt.Errorf("copied executable %s is still not world-readable (is %s mounted noexec or private?)", path, os.TempDir())
	}
	return path, cleanup, nil
}

// worldExecutable reports whether others may read and execute path and
// search every directory above it.
func worldExecutable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		return false
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		di, err := os.Stat(d)
		if err != nil || di.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o755); err != nil { // undo the umask
		out.Close()
		return err
	}
	return out.Close()
}
