package kernel

import (
	"encoding/hex"
	"strings"
)

// AuditString formats s as an audit record field value the way
// kernel/audit.c:audit_log_untrustedstring does: in double quotes, or as
// upper-case hex when s holds a double quote, a space, a control or a
// non-ASCII byte (audit_string_contains_control).
func AuditString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c < 0x21 || c > 0x7e {
			return strings.ToUpper(hex.EncodeToString([]byte(s)))
		}
	}
	return "\"" + s + "\""
}
