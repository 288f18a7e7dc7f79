package main

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestPolicyExplain(t *testing.T) {
	path := writePolicy(t, `
subject readers { uid 1000; }
target any {}
target secret { uid 0; }
allow readers any : read { status io } when nondumpable;
protect secret : read { io };
`)
	out, code := runPolicyCmd(t, "explain", path, "--subject", "uid=1000,comm=top", "--target", "uid=0,pid=1,comm=init", "--item", "status")
	if code != 0 || !strings.Contains(out, "granted read:status") || !strings.Contains(out, "allow@"+path+":5") {
		t.Errorf("explain status: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "explain", path, "--subject", "uid=1000", "--target", "uid=0", "--item", "io,environ")
	if code != 1 || !strings.Contains(out, "refuse:  protect@"+path+":6") || !strings.Contains(out, "record:  broker: denied { read:io }") {
		t.Errorf("explain io: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "explain", path, "--subject", "uid=x", "--target", "uid=0", "--item", "io")
	if code != 2 || !strings.Contains(out, `uid="x": want a number`) {
		t.Errorf("bad subject: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "explain", path, "--subject", "selinux=u:r:t:s0:c1,c2,uid=5", "--target", "dumpable=false", "--item", "mapz")
	if code != 2 || !strings.Contains(out, `did you mean "maps"`) {
		t.Errorf("bad item: exit %d\n%s", code, out)
	}
	s, tg, err := parseProcesses([]string{"selinux=u:r:t:s0:c1,c2,uid=5", "groups=4+27"}, []string{"dumpable=false"})
	if err != nil || s.SELinux != "u:r:t:s0:c1,c2" || s.UID != 5 || len(s.Groups) != 2 || tg.Dumpable {
		t.Errorf("parseProcesses = %+v %+v %v", s, tg, err)
	}
}

// groupOf returns the gid of a group by reading /etc/group, and the name
// of the first group that is not root (a second name that exists here).
func groupOf(t *testing.T, name string) (gid uint32, other string, otherGID uint32) {
	t.Helper()
	f, err := os.Open("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) < 3 {
			continue
		}
		n, err := strconv.ParseUint(fs[2], 10, 32)
		if err != nil {
			continue
		}
		if fs[0] == name {
			gid, found = uint32(n), true
		}
		if other == "" && n != 0 {
			other, otherGID = fs[0], uint32(n)
		}
	}
	if !found || other == "" {
		t.Fatalf("/etc/group lacks group %q or a group besides root", name)
	}
	return gid, other, otherGID
}

// Names in --subject and --target resolve through the passwd and group
// databases as policy files resolve them; unknown names are errors.
func TestPolicyExplainNames(t *testing.T) {
	rootGID, grp, grpGID := groupOf(t, "root")
	for _, tc := range []struct {
		spec   string
		uid    uint32
		gid    uint32
		groups []uint32
		err    string
	}{
		{spec: "uid=root", uid: 0},
		{spec: "uid=0,gid=root", gid: rootGID},
		{spec: "gid=" + grp, gid: grpGID},
		{spec: "groups=root," + grp + ",uid=7", uid: 7, groups: []uint32{rootGID, grpGID}},
		{spec: "groups=" + grp + ":5+root", groups: []uint32{grpGID, 5, rootGID}},
		{spec: "uid=no_such_user_procgate", err: `uid="no_such_user_procgate": want a number or a user name of this machine: user: unknown user no_such_user_procgate`},
		{spec: "gid=no_such_group_procgate", err: `gid="no_such_group_procgate": want a number or a group name of this machine: group: unknown group no_such_group_procgate`},
		{spec: "groups=root,no_such_group_procgate", err: `groups="no_such_group_procgate": want a number or a group name`},
		{spec: "uid=4294967296", err: `uid="4294967296": want a number or a user name`},
	} {
		s, _, err := parseProcesses([]string{tc.spec}, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want …%s…", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || s.UID != tc.uid || s.GID != tc.gid || !reflect.DeepEqual(s.Groups, tc.groups) {
			t.Errorf("%s = %+v, %v; want uid %d gid %d groups %v", tc.spec, s, err, tc.uid, tc.gid, tc.groups)
		}
	}
	// The same names in a policy file and on the command line meet.
	path := writePolicy(t, fmt.Sprintf("subject admins { uid root; group %s; }\ntarget any {}\nallow admins any : read { io };\n", grp))
	out, code := runPolicyCmd(t, "explain", path, "--subject", "uid=root,groups=root,"+grp, "--target", "uid=root", "--item", "io")
	if code != 0 || !strings.Contains(out, "granted read:io") {
		t.Errorf("explain with names: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "explain", path, "--subject", "uid=root,groups=root", "--target", "uid=root", "--item", "io")
	if code != 1 || !strings.Contains(out, "subject classes: (none)") {
		t.Errorf("explain without the group: exit %d\n%s", code, out)
	}
	out, code = runPolicyCmd(t, "explain", path, "--subject", "uid=no_such_user_procgate", "--target", "uid=root", "--item", "io")
	if code != 2 || !strings.Contains(out, "unknown user no_such_user_procgate") {
		t.Errorf("explain with an unknown user: exit %d\n%s", code, out)
	}
}
