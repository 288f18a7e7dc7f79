package broker

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
)

// net/http answers some malformed requests itself, before any handler
// runs (a bad request line, headers too large, a missing Host, an
// unsupported transfer coding, an unmet Expect), with a plain-text body
// written straight to the connection. The broker's contract is a JSON
// error body for every non-2xx answer (docs/api.md), so such an answer
// is rewritten on its way out by [jsonErrors].

// jsonErrors rewrites one write of a complete HTTP response with an
// error status (4xx, 5xx) whose body is not JSON into the broker's JSON
// error shape, and reports whether it did. Every response the broker's
// handlers write has a JSON (or NDJSON) content type, so only net/http's
// own answers are rewritten.
func jsonErrors(b []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if len(b) < len(proto)+3 || !bytes.HasPrefix(b, []byte(proto)) {
		return b, false
	}
	status, err := strconv.Atoi(string(b[len(proto) : len(proto)+3]))
	if err != nil || status < 400 {
		return b, false
	}
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok || bytes.Contains(bytes.ToLower(head), []byte("\r\ncontent-type: application/")) {
		return b, false
	}
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = strings.TrimSpace(string(line[len(proto):]))
	}
	code := "bad_request"
	switch {
	case status == 431:
		code = "too_large"
	case status >= 500:
		code = "not_implemented"
	}
	var e errorBody
	e.Error.Code, e.Error.Message = code, msg
	j, _ := json.Marshal(e)
	j = append(j, '\n')
	out := make([]byte, 0, len(line)+160+len(j))
	out = append(out, line...)
	out = append(out, "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(j)), 10)
	out = append(out, "\r\n\r\n"...)
	return append(out, j...), true
}

// Write sends b, with net/http's own plain-text error answers rewritten
// as JSON. The rewritten answer is longer than b; a complete write
// reports len(b).
func (c *peerConn) Write(b []byte) (int, error) {
	if out, ok := jsonErrors(b); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

var _ net.Conn = (*peerConn)(nil)
