package vm

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"testing"
)

// cpioEntries decodes a newc archive into name -> (mode, data).
func cpioEntries(t *testing.T, b []byte) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for len(b) > 0 {
		if len(b) < 110 || string(b[:6]) != "070701" {
			t.Fatalf("bad header at %q", b[:min(len(b), 16)])
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(b[110 : 110+nameSize-1])
		off := (110 + nameSize + 3) &^ 3
		data := string(b[off : off+size])
		if _, dup := out[name]; dup {
			t.Errorf("%s is in the archive twice", name)
		}
		out[name] = [2]string{strconv.FormatInt(int64(mode), 8), data}
		b = b[(off+size+3)&^3:]
		if name == "TRAILER!!!" {
			if len(b) != 0 {
				t.Fatalf("%d bytes after the trailer", len(b))
			}
			break
		}
	}
	return out
}

func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIO(&buf)
	c.dir("dev")
	c.entry("dev/console", cpioChr|0o600, 5, 1, nil)
	c.file("etc/procgate/plan.json", 0o644, []byte("{}"))
	c.file("init", 0o755, []byte("12345"))
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	got := cpioEntries(t, buf.Bytes())
	want := map[string][2]string{
		"dev":                    {"40755", ""},
		"dev/console":            {"20600", ""},
		"etc":                    {"40755", ""},
		"etc/procgate":           {"40755", ""},
		"etc/procgate/plan.json": {"100644", "{}"},
		"init":                   {"100755", "12345"},
		"TRAILER!!!":             {"0", ""},
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// The device node carries its major and minor numbers.
	i := bytes.Index(buf.Bytes(), []byte("dev/console"))
	hdr := buf.Bytes()[i-110 : i]
	if rmaj, rmin := string(hdr[6+8*9:6+8*10]), string(hdr[6+8*10:6+8*11]); rmaj != "00000005" || rmin != "00000001" {
		t.Errorf("console rdev %s:%s, want 5:1 (%s)", rmaj, rmin, hex.EncodeToString(hdr[:16]))
	}
}
