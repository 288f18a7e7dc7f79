package privsep_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/privsep"
)

// TestLoadPolicyStrict: a policy file another user could have written or
// replaced — by its mode, its owner, a directory above it or a symbolic
// link through such a directory — is refused, and so is a policy
// without a rule, each with a message naming the file and the reason; a
// root-owned file in root-owned directories (a sticky /tmp above them is
// fine) loads.
func TestLoadPolicyStrict(t *testing.T) {
	testenv.RequireRoot(t, "creates files owned by another uid")
	base, err := os.MkdirTemp("", "procgate-pol-") // in /tmp: sticky, root-owned
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	const rule = "allow * * : read { status };\n"
	write := func(rel, src string, mode os.FileMode, uid int) string {
		t.Helper()
		p := filepath.Join(base, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		os.Chown(p, uid, uid)
		return p
	}
	good := write("good.pol", rule, 0o644, 0)
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	inOpen := write("open/p.pol", rule, 0o644, 0)
	link := filepath.Join(base, "open", "link.pol")
	os.Symlink(good, link)
	userDir := filepath.Join(base, "user")
	os.Mkdir(userDir, 0o755)
	os.Chown(userDir, 65534, 65534)
	inUser := write("user/p.pol", rule, 0o644, 0)
	for _, c := range []struct {
		name, path, want string
	}{
		{"root's file", good, ""},
		{"group-writable", write("g.pol", rule, 0o664, 0), "writable by a user other than root"},
		{"world-writable", write("w.pol", rule, 0o646, 0), "writable by a user other than root"},
		{"another owner", write("n.pol", rule, 0o644, 65534), "owned by uid 65534"},
		{"in a world-writable directory", inOpen, "unsafe directory"},
		{"a link in a world-writable directory", link, "unsafe directory"},
		{"in a directory of another user", inUser, "owned by uid 65534"},
		{"empty", write("e.pol", "", 0o644, 0), "has no rule"},
		{"comments only", write("c.pol", "# nothing yet\n", 0o644, 0), "has no rule"},
		{"a directory", base, "not a regular file"},
	} {
		_, err := privsep.LoadPolicy(c.path)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path)):
			t.Errorf("%s: err = %v, want one naming %s and saying %q", c.name, err, c.path, c.want)
		}
	}
}
