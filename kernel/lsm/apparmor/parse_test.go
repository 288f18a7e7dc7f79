package apparmor_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel/lsm/apparmor"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown ptrace permission", "profile a {\n  ptrace (reed),\n}", `2:11: unknown ptrace permission "reed" (did you mean "read"?)`},
		{"missing comma", "profile a {\n  ptrace read\n}", `3:1: expected ',' to end the ptrace rule, found '}'`},
		{"unknown conditional", "profile a { ptrace read pear=x, }", `1:25: unknown ptrace rule conditional "pear"`},
		{"unknown capability", "profile a {\n  capability sys_ptrac,\n}", `2:14: unknown capability "sys_ptrac" (did you mean "sys_ptrace"?)`},
		{"unclosed profile", "profile a {\n  ptrace,\n", `1:11: profile "a" is not closed by '}'`},
		{"include", "profile a {\n  #include <abstractions/base>\n}", `2:3: includes are not supported`},
		{"nested profile", "profile a {\n  profile b { }\n}", `2:3: nested profiles and hats are not supported`},
		{"hat", "profile a {\n  ^hat { }\n}", `2:3: nested profiles and hats are not supported`},
		{"duplicate", "profile a { }\nprofile a { }", `2:9: duplicate profile "a"`},
		{"unknown flag", "profile a flags=(complian) { }", `1:18: unknown profile flag "complian" (did you mean "complain"?)`},
		{"bad glob", "profile a { ptrace peer=x[ab, }", `1:26: bad peer pattern: unterminated character class`},
		{"unterminated other rule", "profile a {\n  /etc/passwd r\n}", `2:3: rule not terminated by ','`},
		{"junk at top level", "profle a { }", `1:1: expected a profile, found "profle" (did you mean "profile"?)`},
		{"variables", "@{HOME}=/home/*/\nprofile a { }", `1:1: variables are not supported`},
		{"unconfined as a name", "profile unconfined { }", `1:9: "unconfined" is the built-in label`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := apparmor.Parse(tc.src)
			if err == nil {
				t.Fatal("no error")
			}
			var e *apparmor.Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want %q", err, tc.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	p, err := apparmor.Parse(`
# A realistic profile: rules the model does not interpret are skipped.
abi <abi/3.0>,
profile docker-default flags=(attach_disconnected,mediate_deleted) {
  network,
  capability,
  file,
  umount,
  deny @{PROC}/* w,   # deny write for all files directly in /proc
  deny /sys/[^f]*/** wklx,
  signal (receive) peer=unconfined,
  dbus (send) bus=session path=/org/x interface={a,b},
  mount options=(ro, remount) -> /,
  /etc/{passwd,group} r,
  ptrace (trace,read,tracedby,readby) peer=docker-default,
  audit deny ptrace (trace) peer="quoted peer",
}
/usr/sbin/nginx flags=(complain) {
  ptrace r,
  ptrace w peer=/usr/sbin/*,
}
profile snap.x /snap/x/bin/x { ptrace rw, }
profile quiet flags=(audit) { }
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Names(), " "); got != "docker-default /usr/sbin/nginx snap.x quiet" {
		t.Errorf("Names = %q", got)
	}
	if p.Profile("/usr/sbin/nginx").Mode != apparmor.Complain || !p.Profile("docker-default").HasPtraceRules() || !p.Profile("quiet").AuditAll {
		t.Error("flags or rules lost")
	}
}
