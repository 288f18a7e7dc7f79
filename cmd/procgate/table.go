package main

import (
	"bufio"
	"io"
	"strings"
	"unicode/utf8"
)

// column is one column of a table printed by ps or top: its title and
// whether its cells are right-aligned (numbers) or left-aligned (names).
type column struct {
	title string
	right bool
}

// writeTable writes a header line and one line per row, each column as
// wide as its widest cell and separated by one space, like procps: right
// columns pad on the left, left columns on the right, and the last column
// (a command line) is not padded. With width > 0 every line is cut at
// width characters, so that a terminal never wraps it.
func writeTable(out io.Writer, cols []column, rows [][]string, width int) error {
	w := make([]int, len(cols))
	for i, c := range cols {
		w[i] = utf8.RuneCountInString(c.title)
	}
	for _, r := range rows {
		for i := range cols[:len(cols)-1] {
			w[i] = max(w[i], utf8.RuneCountInString(r[i]))
		}
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	var line strings.Builder
	emit := func(cells func(i int) string) {
		line.Reset()
		for i, c := range cols {
			cell := cells(i)
			if i > 0 {
				line.WriteByte(' ')
			}
			pad := w[i] - utf8.RuneCountInString(cell)
			switch {
			case i == len(cols)-1:
				line.WriteString(cell)
			case c.right:
				line.WriteString(strings.Repeat(" ", max(pad, 0)) + cell)
			default:
				line.WriteString(cell + strings.Repeat(" ", max(pad, 0)))
			}
		}
		bw.WriteString(fitWidth(strings.TrimRight(line.String(), " "), width))
		bw.WriteByte('\n')
	}
	emit(func(i int) string { return cols[i].title })
	for _, r := range rows {
		emit(func(i int) string { return r[i] })
	}
	return bw.Flush()
}

// fitWidth cuts s to at most width characters (width <= 0: no limit),
// after replacing control characters, which a terminal would interpret,
// with '?' as procps does.
func fitWidth(s string, width int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	n := 0
	for i := range s {
		if n == width {
			return s[:i]
		}
		n++
	}
	return s
}
