package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/privsep"
)

// MaxBody is the largest request body accepted. The bounds on what one
// request may ask for (processes, items, mem ranges) are every front's:
// privsep.MaxPIDs, privsep.MaxItems, privsep.MaxMemRanges.
const MaxBody = 1 << 20

// ReadRequest is the body of POST /v1/read (docs/api.md).
type ReadRequest struct {
	// PIDs lists the processes; All asks for every process instead.
	PIDs []int `json:"pids,omitempty"`
	All  bool  `json:"all,omitempty"`
	// Items lists the items wanted of each process (policy vocabulary).
	Items []string `json:"items"`
	// Mem lists the address ranges read for the mem item.
	Mem []gate.MemRange `json:"mem,omitempty"`
}

// RequestError is a request the broker refuses to decode; it maps to
// HTTP 400 (or 413 when too large).
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &RequestError{Status: 400, Msg: fmt.Sprintf(format, args...)}
}

// DecodeReadRequest decodes and validates a /v1/read body: one JSON
// object, no unknown fields, no trailing data, pids or all (not both),
// known and distinct items, bounded sizes.
func DecodeReadRequest(r io.Reader) (*gate.Request, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, badRequest("read request body: %v", err)
	}
	if len(body) > MaxBody {
		return nil, &RequestError{Status: 413, Msg: fmt.Sprintf("request body larger than %d bytes", MaxBody)}
	}
	return decodeReadRequest(body)
}

func decodeReadRequest(body []byte) (*gate.Request, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("empty request body: want a JSON object such as {\"pids\":[1],\"items\":[\"status\"]}")
	}
	if err := noDuplicateKeys(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var rr ReadRequest
	if err := dec.Decode(&rr); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, badRequest("malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return nil, badRequest("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, badRequest("truncated JSON request")
		}
		return nil, badRequest("invalid request: %v", err)
	}
	if dec.More() {
		return nil, badRequest("trailing data after the request object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("trailing data after the request object")
	}
	switch {
	case rr.All && len(rr.PIDs) > 0:
		return nil, badRequest("give either \"pids\" or \"all\", not both")
	case !rr.All && len(rr.PIDs) == 0:
		return nil, badRequest("no processes: give \"pids\" (a list of pids) or \"all\": true")
	case len(rr.PIDs) > privsep.MaxPIDs:
		return nil, &RequestError{Status: 413, Msg: fmt.Sprintf("%d pids: at most %d per request", len(rr.PIDs), privsep.MaxPIDs)}
	case len(rr.Items) == 0:
		return nil, badRequest("no items: give \"items\", for example [\"status\", \"io\"]")
	case len(rr.Items) > privsep.MaxItems:
		return nil, &RequestError{Status: 413, Msg: fmt.Sprintf("%d items: at most %d per request", len(rr.Items), privsep.MaxItems)}
	case len(rr.Mem) > privsep.MaxMemRanges:
		return nil, &RequestError{Status: 413, Msg: fmt.Sprintf("%d mem ranges: at most %d per request", len(rr.Mem), privsep.MaxMemRanges)}
	}
	req := &gate.Request{All: rr.All, Mem: rr.Mem}
	seenPID := make(map[int]bool, len(rr.PIDs))
	for _, p := range rr.PIDs {
		if p <= 0 || p > privsep.MaxPID {
			return nil, badRequest("pid %d out of range 1..%d", p, privsep.MaxPID)
		}
		if !seenPID[p] {
			seenPID[p] = true
			req.PIDs = append(req.PIDs, p)
		}
	}
	seen := map[gate.Item]bool{}
	for _, n := range rr.Items {
		it, err := gate.ParseItem(n)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		if !seen[it] {
			seen[it] = true
			req.Items = append(req.Items, it)
		}
	}
	return req, nil
}

// noDuplicateKeys refuses an object that names a key twice, at any
// depth: encoding/json would keep the last one silently, and two readers
// of the same body (a proxy, an audit trail, the broker) could then see
// different requests. Malformed JSON is left to the decoder's message.
func noDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys   map[string]bool
		object bool
	}
	var stack []frame
	wantKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // EOF, or malformed: the decoder reports it
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{keys: map[string]bool{}, object: true})
				wantKey = true
				continue
			case '[':
				stack = append(stack, frame{})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case string:
			if wantKey {
				top := &stack[len(stack)-1]
				if top.keys[t] {
					return badRequest("duplicate key %q at byte %d", t, dec.InputOffset())
				}
				top.keys[t] = true
				wantKey = false
				continue
			}
		}
		// A value ended: inside an object the next token is a key.
		wantKey = len(stack) > 0 && stack[len(stack)-1].object
	}
}
