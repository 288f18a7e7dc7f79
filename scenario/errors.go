package scenario

import "github.com/procgate/procgate/internal/srcerr"

// Error is one problem in a scenario file, with its position; Error()
// returns "file:line:column: message".
type Error = srcerr.Error

// ErrorList is every problem found in one file, in file order.
type ErrorList = srcerr.List
