package gate

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/policy"
)

// TestBinaryRoundTrip: every kind of value, a denied item and a denied
// process survive the binary records byte for byte, bytes that are not
// UTF-8 included.
func TestBinaryRoundTrip(t *testing.T) {
	in := []ProcResult{
		{PID: 42, Start: 1 << 40, ID: 1<<33 + 5, Comm: "a\x00b\xff", UID: 1000, OwnerUID: 1000, OwnerGID: 100, Threads: []int{42, 43}, Items: []ItemResult{
			{Item: policy.ItemAuxv, kind: valueText, Text: "\x00\x01\xfe\xff"},
			{Item: policy.ItemStat, kind: valueText, Text: "1 (x) S", Masked: true},
			{Item: policy.ItemCmdline, kind: valueList, List: []string{"sleep", "\xff300", ""}},
			{Item: policy.ItemEnviron, kind: valueList, List: []string{}},
			{Item: policy.ItemFdCount, kind: valueCount, Count: 7},
			{Item: policy.ItemFd, kind: valueLinks, Links: []Link{{"0", "/dev/null"}, {"1", "pipe:[1]"}}},
			{Item: policy.ItemMem, kind: valueMem, Mem: []MemChunk{{Addr: 4096, Data: []byte{0, 1, 2}}}},
			{Item: policy.ItemAttach, kind: valueBool},
			{Item: policy.ItemMaps, Denial: &Denial{Errno: unix.EACCES, Reason: "policy: no"}},
		}},
		{PID: 7, Denial: &Denial{Errno: unix.ESRCH, Reason: "gone"}},
	}
	var b []byte
	for i := range in {
		b = in[i].AppendBinary(b)
	}
	var out []ProcResult
	if err := DecodeRecords(b, func(r *ProcResult) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
	for n := range len(b) {
		err := DecodeRecords(b[:n], func(*ProcResult) error { return nil })
		if n != 0 && n != len(b) && err == nil && !recordBoundary(b, n) {
			t.Fatalf("%d of %d bytes decoded without an error", n, len(b))
		}
	}
}

// recordBoundary reports whether n is where a record of b ends.
func recordBoundary(b []byte, n int) bool {
	for at := 0; at < len(b); {
		at += 4 + int(uint32(b[at])|uint32(b[at+1])<<8|uint32(b[at+2])<<16|uint32(b[at+3])<<24)
		if at == n {
			return true
		}
	}
	return false
}

// FuzzDecodeRecords: any bytes decode or fail with an error, never a
// panic, and what decodes encodes back to the same bytes.
func FuzzDecodeRecords(f *testing.F) {
	r := ProcResult{PID: 1, Comm: "x", Items: []ItemResult{{Item: policy.ItemStatus, kind: valueText, Text: "Name:\tx\n"}}}
	f.Add(r.AppendBinary(nil))
	d := ProcResult{PID: 2, Denial: &Denial{Errno: unix.ESRCH, Reason: "gone"}}
	f.Add(d.AppendBinary(nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		err := DecodeRecords(b, func(r *ProcResult) error {
			again = r.AppendBinary(again)
			return nil
		})
		if err == nil && string(again) != string(b) {
			t.Fatalf("decoded and encoded again: %x, was %x", again, b)
		}
	})
}
