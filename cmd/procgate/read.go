package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/procgate/procgate/client"
	"github.com/procgate/procgate/policy"
)

func newReadCmd() *cobra.Command {
	var socket, output string
	cmd := &cobra.Command{
		Use:   "read PID ITEM...",
		Short: "Read items of a process through the broker",
		Long: `read asks the broker (procgate serve) for items of one process — status,
stat, io, fd, exe, environ, … (procgate policy's item vocabulary; an unknown
name is refused with the nearest one) — and prints each value under a
"== item ==" header, or one JSON object with -o json. A refused item is
printed to standard error with its errno and reason; in JSON it is
{"error": {"errno", "code", "reason"}}, as the broker answers it.

Exit status: 0 when every item was answered, 1 when one was refused or the
process does not exist, 2 when the broker cannot be reached or the request is
invalid.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return &exitError{2, fmt.Errorf("read: %q is not a pid", args[0])}
			}
			return runRead(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), socket, output, pid, args[1:])
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func runRead(ctx ctxT, out, errOut io.Writer, socket, output string, pid int, items []string) error {
	if output != "text" && output != "json" {
		return &exitError{2, fmt.Errorf("read: -o %q: want text or json", output)}
	}
	for _, it := range items {
		if _, err := policy.ParseItem(it); err != nil {
			return &exitError{2, fmt.Errorf("read: %w", err)}
		}
	}
	c := client.New(socket)
	defer c.Close()
	procs, err := c.ReadAll(ctx, client.Request{PIDs: []int{pid}, Items: items})
	if err != nil {
		return clientError("read", err)
	}
	if len(procs) != 1 {
		return &exitError{2, fmt.Errorf("read: the broker answered %d processes for one", len(procs))}
	}
	p := procs[0]
	if p.Err != nil {
		if output == "json" {
			if err := writeJSON(out, map[string]any{"pid": p.PID, "error": errorJSON(p.Err)}); err != nil {
				return err
			}
			return &exitError{1, nil}
		}
		return &exitError{1, fmt.Errorf("read: %w", p.Err)}
	}
	refused := 0
	if output == "json" {
		// A refused item is {"error": {"errno", "code", "reason"}}, as the
		// broker answers it (docs/api.md).
		m := map[string]any{"pid": p.PID, "start": p.Start, "comm": p.Comm, "uid": p.UID}
		vals := map[string]any{}
		for _, it := range items {
			if raw, err := p.Raw(it); err != nil {
				vals[it] = map[string]any{"error": errorJSON(err)}
				refused++
			} else {
				vals[it] = raw
			}
		}
		m["items"] = vals
		if err := writeJSON(out, m); err != nil {
			return err
		}
	} else {
		for _, it := range items {
			raw, err := p.Raw(it)
			if err != nil {
				fmt.Fprintf(errOut, "procgate: read: %v\n", err)
				refused++
				continue
			}
			fmt.Fprintf(out, "== %s ==\n%s", it, formatValue(raw, p.Masked(it)))
		}
	}
	if refused > 0 {
		return &exitError{1, nil}
	}
	return nil
}

// errorJSON is an error as -o json prints it: a broker's denial as the
// broker wrote it ({"errno", "code", "reason"}), anything else as its
// reason.
func errorJSON(err error) any {
	var ie *client.ItemError
	if errors.As(err, &ie) {
		return ie
	}
	return map[string]string{"reason": err.Error()}
}

// writeJSON writes v as one indented JSON document.
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatValue renders an item's JSON value as text: strings as they are,
// lists one element a line, maps "name -> value" sorted, numbers plain.
func formatValue(raw json.RawMessage, masked bool) string {
	var b strings.Builder
	var s string
	var l []string
	var m map[string]string
	switch {
	case json.Unmarshal(raw, &s) == nil:
		b.WriteString(s)
	case json.Unmarshal(raw, &l) == nil:
		for _, e := range l {
			b.WriteString(e)
			b.WriteByte('\n')
		}
	case json.Unmarshal(raw, &m) == nil:
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, ae := strconv.Atoi(keys[i])
			c, ce := strconv.Atoi(keys[j])
			if ae == nil && ce == nil {
				return a < c
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			v := m[k]
			if strings.Contains(v, "\n") {
				fmt.Fprintf(&b, "%s:\n%s", k, indentLines(v))
			} else {
				fmt.Fprintf(&b, "%s -> %s\n", k, v)
			}
		}
	default:
		b.Write(raw)
	}
	out := b.String()
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	if masked {
		out += "(fields the kernel masks for this caller are zeroed)\n"
	}
	return out
}

func indentLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
