package broker

import (
	"bytes"
	"errors"
	"testing"

	"github.com/procgate/procgate/privsep"
)

// FuzzDecodeReadRequest feeds the request decoder arbitrary bodies: it
// must never panic, and must either return a valid request or a
// *RequestError with a 4xx status.
func FuzzDecodeReadRequest(f *testing.F) {
	for _, s := range []string{
		`{"pids":[1,2,3],"items":["status","io"]}`,
		`{"all":true,"items":["stat","cmdline"]}`,
		`{"pids":[1],"items":["mem"],"mem":[{"addr":4096,"len":16}]}`,
		`{"pids":[1,`, `[]`, `null`, `{"pids":[-1],"items":["status"]}`, `{"pids":[1],"items":["nope"]}`,
		`{"pids":[1],"items":["status"]}{}`, "\x00\xff", `{"pids":[1e9],"items":["status"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeReadRequest(bytes.NewReader(body))
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 || re.Msg == "" {
				t.Fatalf("error %v is not a 4xx RequestError", err)
			}
			return
		}
		if len(req.Items) == 0 || (req.All == (len(req.PIDs) > 0)) {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		for _, p := range req.PIDs {
			if p <= 0 || p > privsep.MaxPID {
				t.Fatalf("accepted pid %d", p)
			}
		}
		for _, it := range req.Items {
			if !it.Valid() {
				t.Fatalf("accepted item %v", it)
			}
		}
	})
}
