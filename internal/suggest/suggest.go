// Package suggest finds the nearest known name to a misspelt one, for
// error messages such as `unknown capability "sys_ptrac" (did you mean
// "sys_ptrace"?)`.
package suggest

import "fmt"

// Nearest returns the candidate closest to s by edit distance, provided
// it is within max edits (ties go to the earlier candidate), and whether
// one was found.
func Nearest(s string, candidates []string, max int) (string, bool) {
	best, bestD := "", max+1
	for _, c := range candidates {
		if d := Distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD <= max
}

// DidYouMean returns ` (did you mean "x"?)` for the nearest candidate
// within max edits, or "" when none is that close.
func DidYouMean(s string, candidates []string, max int) string {
	if n, ok := Nearest(s, candidates, max); ok {
		return fmt.Sprintf(" (did you mean %q?)", n)
	}
	return ""
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
