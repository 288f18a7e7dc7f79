package privsep

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
)

// TestRequestCodec: what the front encodes the reader decodes unchanged;
// anything malformed (truncated, trailing bytes, unknown or repeated
// items, bad pids, both or neither of pids and all) is refused.
func TestRequestCodec(t *testing.T) {
	for _, req := range []*gate.Request{
		{PIDs: []int{1, 2, MaxPID}, Items: []gate.Item{0, 3}},
		{All: true, Items: []gate.Item{1}, Mem: []gate.MemRange{{Addr: 1 << 40, Len: 4096}}},
		{PIDs: []int{9}, Items: []gate.Item{2}, Binary: true},
		{All: true, Items: []gate.Item{2}, Binary: true},
		{PIDs: []int{9}, Items: []gate.Item{2}, Binary: true, TID: 10, Threads: true},
	} {
		got, err := decodeRequest(encodeRequest(req))
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("round trip %+v: %+v, %v", req, got, err)
		}
	}
	good := encodeRequest(&gate.Request{PIDs: []int{7}, Items: []gate.Item{0}})
	bad := map[string][]byte{
		"empty":        {},
		"truncated":    good[:len(good)-1],
		"trailing":     append(bytes.Clone(good), 0),
		"flags":        append([]byte{8}, good[1:]...),
		"tid of many":  encodeRequest(&gate.Request{PIDs: []int{7, 8}, Items: []gate.Item{0}, TID: 9}),
		"tid too big":  encodeRequest(&gate.Request{PIDs: []int{7}, Items: []gate.Item{0}, TID: MaxPID + 1}),
		"no items":     encodeRequest(&gate.Request{PIDs: []int{7}}),
		"unknown item": encodeRequest(&gate.Request{PIDs: []int{7}, Items: []gate.Item{250}}),
		"repeat item":  encodeRequest(&gate.Request{PIDs: []int{7}, Items: []gate.Item{0, 0}}),
		"pid 0":        encodeRequest(&gate.Request{PIDs: []int{0}, Items: []gate.Item{0}}),
		"pid too big":  encodeRequest(&gate.Request{PIDs: []int{MaxPID + 1}, Items: []gate.Item{0}}),
		"repeat pid":   encodeRequest(&gate.Request{PIDs: []int{7, 7}, Items: []gate.Item{0}}),
		"no pids":      encodeRequest(&gate.Request{Items: []gate.Item{0}}),
		"pids and all": encodeRequest(&gate.Request{All: true, PIDs: []int{7}, Items: []gate.Item{0}}),
	}
	for name, b := range bad {
		if _, err := decodeRequest(b); !errors.Is(err, errProtocol) {
			t.Errorf("%s: err = %v, want a protocol violation", name, err)
		}
	}
}

// TestRecvMsgFDs: messages are reassembled across packets within the
// size bound; descriptors beyond what the receiver allows are closed,
// never kept.
func TestRecvMsgFDs(t *testing.T) {
	a, far, err := seqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := connFromFD(far, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	big := bytes.Repeat([]byte("x"), 3*maxPacket+17)
	if err := sendMsg(a, msgData, big); err != nil {
		t.Fatal(err)
	}
	typ, p, _, err := recvMsg(b, len(big), 0)
	if err != nil || typ != msgData || !bytes.Equal(p, big) {
		t.Fatalf("reassembly: %c %d %v", typ, len(p), err)
	}
	sendMsg(a, msgData, big)
	if _, _, _, err := recvMsg(b, len(big)-1, 0); !errors.Is(err, errProtocol) {
		t.Fatalf("oversized message: %v", err)
	}
	// The refusal came at the last packet: nothing is left queued.

	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := countFDs(t)
	if err := sendMsg(a, msgConn, nil, int(f.Fd()), int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := recvMsg(b, 16, 1); !errors.Is(err, errProtocol) {
		t.Fatalf("two descriptors where one is allowed: %v", err)
	}
	if after := countFDs(t); after != before {
		t.Errorf("%d descriptors open after refusing a message, %d before", after, before)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

var _ = unix.Close

// TestControlMessages: a thread identity survives the control channel's
// encoding; a control message with the wrong descriptors or payload for
// its type, or a reject reason out of range, is refused.
func TestControlMessages(t *testing.T) {
	id := Identity{Source: FromThread, PID: 4194304, UID: 65534, GID: 4294967294, PidFD: -1}
	if got := decodeThread(encodeThread(id)); got != id {
		t.Errorf("thread identity round trip: %+v, want %+v", got, id)
	}
	for _, c := range []struct {
		name string
		typ  byte
		p    []byte
		fds  int
		ok   bool
	}{
		{"conn", msgConn, nil, 2, true},
		{"conn with one fd", msgConn, nil, 1, false},
		{"conn with payload", msgConn, []byte{1}, 2, false},
		{"thread", msgThread, make([]byte, 12), 1, true},
		{"thread short", msgThread, make([]byte, 11), 1, false},
		{"thread with the client's socket", msgThread, make([]byte, 12), 2, false},
		{"metrics", msgMetric, nil, 1, true},
		{"reload without reply socket", msgReload, nil, 0, false},
		{"quit", msgQuit, nil, 1, true},
		{"reject", msgReject, []byte{1}, 0, true},
		{"reject last", msgReject, []byte{byte(len(RejectReasons))}, 0, true},
		{"reject 0", msgReject, []byte{0}, 0, false},
		{"reject out of range", msgReject, []byte{byte(len(RejectReasons) + 1)}, 0, false},
		{"unknown type", 'Z', nil, 0, false},
		{"a reply type", msgFinal, nil, 0, false},
	} {
		if got := validControl(c.typ, c.p, make([]int, c.fds)); got != c.ok {
			t.Errorf("%s: valid = %v, want %v", c.name, got, c.ok)
		}
	}
}
