package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ReadLogins reads the login users of a passwd and a group file (the
// files' format, passwd(5) and group(5)): every user whose shell is not
// nologin or false, with its primary group and the groups that list it.
func ReadLogins(passwd, group string) ([]Login, error) {
	pf, err := os.Open(passwd)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	gf, err := os.Open(group)
	if err != nil {
		return nil, err
	}
	defer gf.Close()
	return parseLogins(passwd, pf, group, gf)
}

func parseLogins(pname string, passwd io.Reader, gname string, group io.Reader) ([]Login, error) {
	members := map[string][]uint32{}
	sc := bufio.NewScanner(group)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: want 4 fields, name:password:gid:members", gname, n)
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: gid %q: not a number", gname, n, f[2])
		}
		for _, u := range strings.Split(f[3], ",") {
			if u != "" {
				members[u] = append(members[u], uint32(gid))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", gname, err)
	}
	var out []Login
	sc = bufio.NewScanner(passwd)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 7 {
			return nil, fmt.Errorf("%s:%d: want 7 fields, name:password:uid:gid:gecos:home:shell", pname, n)
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: uid %q or gid %q: not a number", pname, n, f[2], f[3])
		}
		shell := f[6]
		if shell == "" || strings.HasSuffix(shell, "/nologin") || strings.HasSuffix(shell, "/false") || strings.HasSuffix(shell, "/sync") {
			continue
		}
		groups := slices.Clone(members[f[0]])
		if !slices.Contains(groups, uint32(gid)) {
			groups = append(groups, uint32(gid))
		}
		slices.Sort(groups)
		out = append(out, Login{Name: f[0], UID: uint32(uid), GID: uint32(gid), Groups: slices.Compact(groups)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", pname, err)
	}
	return out, nil
}
