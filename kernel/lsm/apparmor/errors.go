package apparmor

import "github.com/procgate/procgate/internal/srcerr"

// Error is one problem in a profile text. Line and Col are 1-based and count
// bytes within the text given to [Parse], so that a caller that embeds
// the text in a larger file can add its own offset; File is empty.
type Error = srcerr.Error

// ErrorList is every problem found in one text, in text order. [Parse]
// returns one when the text is not valid.
type ErrorList = srcerr.List
