package vm

import (
	"bytes"
	"fmt"
	"io"
	"path"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks
// as initramfs (init/initramfs.c). Directories are emitted before the
// files in them.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{}} }

// File types of a newc header's mode (include/uapi/linux/stat.h).
const (
	cpioDir = 0o040000
	cpioReg = 0o100000
	cpioChr = 0o020000
)

// entry writes one header, name and data, each padded to 4 bytes.
func (c *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	nlink := uint32(1)
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.ino++
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	pad(&b, b.Len())
	if _, err := c.w.Write(b.Bytes()); err != nil {
		c.err = err
		return
	}
	b.Reset()
	b.Write(data)
	pad(&b, len(data))
	_, c.err = c.w.Write(b.Bytes())
}

func pad(b *bytes.Buffer, n int) {
	for ; n%4 != 0; n++ {
		b.WriteByte(0)
	}
}

// dir writes name and its missing ancestors as directories (0755).
func (c *cpioWriter) dir(name string) {
	name = path.Clean(name)
	if name == "." || name == "/" || c.dirs[name] {
		return
	}
	c.dir(path.Dir(name))
	c.dirs[name] = true
	c.entry(name, cpioDir|0o755, 0, 0, nil)
}

// file writes a regular file (and its directories).
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.dir(path.Dir(name))
	c.entry(name, cpioReg|perm, 0, 0, data)
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	return c.err
}
