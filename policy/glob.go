package policy

import "strings"

// glob is a compiled pattern. In label mode ('*' matches any run of
// bytes) it serves SELinux contexts, types and AppArmor labels; in path
// mode '*' and '?' stop at '/' and a "**" segment matches any number of
// segments, as in AppArmor (cgroup paths).
type glob struct {
	pat    string
	path   bool
	exact  bool // no metacharacters: compare strings
	prefix bool // "literal*" in label mode, or "literal/**" in path mode
	lit    string
}

func compileGlob(pat string, path bool) glob {
	g := glob{pat: pat, path: path}
	switch {
	case !strings.ContainsAny(pat, "*?"):
		g.exact, g.lit = true, pat
	case !path && strings.IndexAny(pat, "*?") == len(pat)-1 && pat[len(pat)-1] == '*':
		g.prefix, g.lit = true, pat[:len(pat)-1]
	case path && strings.HasSuffix(pat, "/**") && !strings.ContainsAny(pat[:len(pat)-3], "*?"):
		g.prefix, g.lit = true, pat[:len(pat)-2] // keep the '/'
	}
	return g
}

func (g *glob) match(s string) bool {
	switch {
	case g.exact:
		return s == g.lit
	case g.prefix:
		return strings.HasPrefix(s, g.lit)
	case !g.path:
		return wildMatch(g.pat, s, false)
	}
	return pathMatch(g.pat, s)
}

// wildMatch matches '*' (any run; in segment mode, not crossing '/') and
// '?' (one byte) in O(len(p)·len(s)) with one backtrack point, the
// classic greedy algorithm, which is exact for a single kind of star.
func wildMatch(p, s string, segment bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == s[si] || p[pi] == '?' && !(segment && s[si] == '/')):
			pi++
			si++
		case star >= 0 && !(segment && s[mark] == '/'):
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// pathMatch matches segment by segment; a "**" segment matches zero or
// more whole segments.
func pathMatch(p, s string) bool {
	for {
		if p == "" {
			return s == ""
		}
		pseg, prest, pmore := strings.Cut(p, "/")
		if pseg == "**" {
			if !pmore {
				return true // trailing ** matches the rest
			}
			// Try every suffix of s that starts a segment.
			for {
				if pathMatch(prest, s) {
					return true
				}
				i := strings.IndexByte(s, '/')
				if i < 0 {
					return false
				}
				s = s[i+1:]
			}
		}
		sseg, srest, smore := strings.Cut(s, "/")
		if !wildMatch(pseg, sseg, true) || pmore != smore {
			return false
		}
		p, s = prest, srest
	}
}
