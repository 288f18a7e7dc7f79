package scenario

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/procgate/procgate/internal/suggest"
)

// reader turns YAML nodes into values, collecting positioned errors.
type reader struct {
	file string
	errs ErrorList
}

func (r *reader) errf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`line (\d+)(?:, column (\d+))?: (.*)`)

// parseErr converts a yaml.v3 syntax error in src to a positioned error.
func (r *reader) parseErr(err error, src []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 1, 1
	given := false
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			col, _ = strconv.Atoi(m[2])
		}
		msg, given = m[3], true
	}
	if open, ok := flowOpeners[msg]; ok {
		// The parser names the line of the flow collection's opening
		// indicator 0-based (the line before it) and no column; when the
		// indicator is on the first line it names the 0-based line of the
		// problem instead, or nothing.
		if given {
			line++
		}
		if b, ok := unclosedBracket(src, open); ok && (b.line == line || b.line == 1) {
			line, col = b.line, b.col
		}
		msg = "this " + strconv.QuoteRune(rune(open)) + " is not closed: " + msg
	}
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Col: col, Msg: "invalid YAML: " + msg})
}

// flowOpeners maps yaml.v3's complaints about an unfinished flow
// collection to the collection's opening indicator.
var flowOpeners = map[string]byte{
	"did not find expected ',' or ']'": '[',
	"did not find expected ',' or '}'": '{',
}

// mapping returns the keys of a mapping node, reporting keys not in
// allowed (with the nearest allowed one) and duplicates.
func (r *reader) mapping(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		r.errf(n, "%s: want a mapping, got %s", what, kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			r.errf(k, "%s: unknown key %q%s", what, k.Value, nearest(k.Value, allowed))
			continue
		}
		if _, dup := out[k.Value]; dup {
			r.errf(k, "%s: key %q given twice", what, k.Value)
			continue
		}
		out[k.Value] = v
	}
	return out
}

func (r *reader) seq(n *yaml.Node, what string) []*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.errf(n, "%s: want a list, got %s", what, kindName(n))
		return nil
	}
	return n.Content
}

func (r *reader) str(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		r.errf(n, "%s: want a scalar, got %s", what, kindName(n))
		return ""
	}
	return n.Value
}

func (r *reader) integer(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	s := r.str(n, what)
	if n == nil || n.Kind != yaml.ScalarNode {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		r.errf(n, "%s: %q is not an integer", what, s)
		return 0, false
	}
	if v < lo || v > hi {
		r.errf(n, "%s: %d is out of range [%d, %d]", what, v, lo, hi)
		return 0, false
	}
	return v, true
}

func (r *reader) boolean(n *yaml.Node, what string) bool {
	s := r.str(n, what)
	switch s {
	case "true", "yes", "on":
		return true
	case "false", "no", "off", "":
		return false
	}
	r.errf(n, "%s: %q is not a boolean", what, s)
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

func nearest(s string, list []string) string {
	if hint := suggest.DidYouMean(s, list, min(3, 1+len(s)/2-1)); hint != "" {
		return hint
	}
	return " (known: " + strings.Join(list, ", ") + ")"
}
