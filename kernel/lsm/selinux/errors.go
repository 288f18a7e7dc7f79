package selinux

import "github.com/procgate/procgate/internal/srcerr"

// Error is one problem in a policy text. Line and Col are 1-based and count
// bytes within the text given to [Parse], so that a caller that embeds
// the text in a larger file can add its own offset; File is empty.
type Error = srcerr.Error

// ErrorList is every problem found in one text, in text order. [Parse]
// returns one when the text is not valid.
type ErrorList = srcerr.List

// maxErrors bounds the list; a text that is not a policy at all would
// otherwise report every token.
const maxErrors = 20
