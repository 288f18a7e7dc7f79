package report

import (
	"errors"
	"io"
)

// WriteHTML writes r as one self-contained HTML page.
func WriteHTML(w io.Writer, r *Report) error { return errors.New("html: not written yet") }
