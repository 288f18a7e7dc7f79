package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/gate"
)

// The front and the reader talk over SOCK_SEQPACKET socket pairs: one
// control pair made at start, and one pair per client connection (and
// per metrics, reload or shutdown exchange) whose reader end travels
// over the control pair with SCM_RIGHTS. A message is one or more
// packets of [type][flags][payload]; flagMore marks every packet but the
// last. Each side bounds the size of what it reassembles, and every
// field is validated: the reader trusts nothing the front sends.
const (
	flagMore = 1
	// maxPacket is the largest packet payload sent (well under the
	// default socket buffer, so one packet is one sendmsg).
	maxPacket = 60 << 10
	// maxFDs is the most descriptors one message may carry.
	maxFDs = 2
)

// Message types. Upper case: front to reader; lower case: reader to
// front.
const (
	// Control pair.
	msgReady  = 'k' // reader → front at start: [gen u64][error text]
	msgConn   = 'C' // fds: [session end, client connection]
	msgThread = 'T' // fds: [session end]; [tid u32][uid u32][gid u32]
	msgMetric = 'M' // fds: [reply end]; reply msgText
	msgReload = 'H' // fds: [reply end]; reply msgFinal (code, gen, text)
	msgReject = 'J' // [reason u8]
	msgQuit   = 'Q' // fds: [reply end]; reply msgFinal when drained
	// Session pairs.
	msgRead    = 'R' // encoded gate.Request
	msgVersion = 'V'
	msgWhoami  = 'W'
	msgHello   = 'h' // [code u8][text]: code 0 identified, then [flags u8]
	msgData    = 'd' // encoded JSON lines
	msgFinal   = 'f' // [code u8][n u32][gen u64][text]
	msgLast    = 'l' // [final length u16][final, as msgFinal's][the last data]: a small answer in one packet
	msgText    = 't' // text or JSON
)

// Hello flags, after code 0.
const (
	helloPrivileged = 1 // the caller may use reserved capacity
)

// Final codes.
const (
	codeOK       = 0
	codeGone     = 1 // gate.ErrCallerGone
	codeChanged  = 2 // unix.EAGAIN
	codeInternal = 3
	codeIdent    = 4 // the caller cannot be identified
)

// maxText bounds error texts sent across.
const maxText = 1024

var errProtocol = errors.New("privsep: protocol violation")

// sendMsg sends one message, split into packets, with fds on the first.
func sendMsg(c *net.UnixConn, typ byte, payload []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	pkt := make([]byte, 0, 2+min(len(payload), maxPacket))
	for first := true; first || len(payload) > 0; first = false {
		n := min(len(payload), maxPacket)
		flags := byte(0)
		if n < len(payload) {
			flags = flagMore
		}
		pkt = append(pkt[:0], typ, flags)
		pkt = append(pkt, payload[:n]...)
		payload = payload[n:]
		if _, _, err := c.WriteMsgUnix(pkt, oob, nil); err != nil {
			return err
		}
		oob = nil
	}
	return nil
}

// recvMsg receives one message of at most max payload bytes and at most
// fdMax descriptors (all on its first packet); on any violation the
// descriptors received are closed. Callers check the exact count per
// message type (closeFDs on a mismatch).
func recvMsg(c *net.UnixConn, max int, fdMax int) (typ byte, payload []byte, fds []int, err error) {
	bp := pktPool.Get().(*[]byte)
	defer pktPool.Put(bp)
	pkt := *bp
	var oobArr [64]byte
	oob := oobArr[:unix.CmsgSpace(4*maxFDs)]
	fail := func(e error) (byte, []byte, []int, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return 0, nil, nil, e
	}
	for first := true; ; first = false {
		n, oobn, flags, _, err := c.ReadMsgUnix(pkt, oob)
		if err != nil {
			return fail(err)
		}
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				return fail(perr)
			}
		}
		switch {
		case n == 0:
			return fail(errEOF) // orderly shutdown of the peer
		case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
			return fail(fmt.Errorf("%w: truncated packet", errProtocol))
		case n < 2:
			return fail(fmt.Errorf("%w: short packet", errProtocol))
		case !first && pkt[0] != typ:
			return fail(fmt.Errorf("%w: packet type changed within a message", errProtocol))
		case !first && oobn > 0:
			return fail(fmt.Errorf("%w: descriptors after the first packet", errProtocol))
		case len(payload)+n-2 > max:
			return fail(fmt.Errorf("%w: message over %d bytes", errProtocol, max))
		}
		typ = pkt[0]
		payload = append(payload, pkt[2:n]...)
		if pkt[1]&^flagMore != 0 {
			return fail(fmt.Errorf("%w: unknown flags", errProtocol))
		}
		if pkt[1]&flagMore == 0 {
			break
		}
	}
	if len(fds) > fdMax {
		return fail(fmt.Errorf("%w: %d descriptors, want at most %d", errProtocol, len(fds), fdMax))
	}
	return typ, payload, fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

var pktPool = sync.Pool{New: func() any { b := make([]byte, maxPacket+2); return &b }}

var errEOF = errors.New("privsep: peer closed the channel")

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", errProtocol, err)
	}
	var fds []int
	var bad error
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			bad = fmt.Errorf("%w: unexpected control message", errProtocol)
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = fmt.Errorf("%w: rights: %v", errProtocol, err)
			continue
		}
		for _, fd := range got {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, got...)
	}
	return fds, bad
}

// seqpacketPair returns a connected SOCK_SEQPACKET pair: ours as a
// *net.UnixConn, theirs as a raw descriptor (close it once sent).
func seqpacketPair() (*net.UnixConn, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("privsep: socketpair: %w", err)
	}
	c, err := connFromFD(fds[0], "privsep")
	if err != nil {
		unix.Close(fds[1])
		return nil, -1, err
	}
	return c, fds[1], nil
}

// connFromFD wraps fd (which it takes) as a *net.UnixConn after checking
// it is an AF_UNIX SOCK_SEQPACKET socket.
func connFromFD(fd int, name string) (*net.UnixConn, error) {
	if err := checkSocket(fd, unix.SOCK_SEQPACKET); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("privsep: %s channel: %w", name, err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%w: %s is not a Unix socket", errProtocol, name)
	}
	return uc, nil
}

// checkSocket verifies that fd is an AF_UNIX socket of type typ.
func checkSocket(fd, typ int) error {
	d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || d != unix.AF_UNIX {
		return fmt.Errorf("%w: descriptor is not a Unix socket", errProtocol)
	}
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || t != typ {
		return fmt.Errorf("%w: descriptor has socket type %d, want %d", errProtocol, t, typ)
	}
	return nil
}

// encodeRequest encodes a decoded, validated request:
// [flags u8][nitems u8][items…][nmem u8][addr u64, len u64]…[npids u32][pid u32]…[tid u32],
// flags being reqAll, reqBinary and reqThreads.
func encodeRequest(req *gate.Request) []byte {
	b := make([]byte, 0, 8+len(req.Items)+16*len(req.Mem)+4*len(req.PIDs))
	flags := byte(0)
	if req.All {
		flags |= reqAll
	}
	if req.Binary {
		flags |= reqBinary
	}
	if req.Threads {
		flags |= reqThreads
	}
	b = append(b, flags, byte(len(req.Items)))
	for _, it := range req.Items {
		b = append(b, byte(it))
	}
	b = append(b, byte(len(req.Mem)))
	for _, m := range req.Mem {
		b = binary.LittleEndian.AppendUint64(b, m.Addr)
		b = binary.LittleEndian.AppendUint64(b, m.Len)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(req.PIDs)))
	for _, p := range req.PIDs {
		b = binary.LittleEndian.AppendUint32(b, uint32(p))
	}
	return binary.LittleEndian.AppendUint32(b, uint32(req.TID))
}

// Request flags.
const (
	reqAll     = 1
	reqBinary  = 2
	reqThreads = 4
)

// maxRequestMsg bounds an encoded request.
const maxRequestMsg = 12 + MaxItems + 16*MaxMemRanges + 4*MaxPIDs

// decodeRequest decodes and re-validates a request from the front with
// the bounds every front applies (MaxItems, MaxMemRanges, MaxPIDs,
// MaxPID).
func decodeRequest(b []byte) (*gate.Request, error) {
	bad := func(what string) (*gate.Request, error) {
		return nil, fmt.Errorf("%w: request: %s", errProtocol, what)
	}
	if len(b) < 2 {
		return bad("short")
	}
	if b[0]&^(reqAll|reqBinary|reqThreads) != 0 {
		return bad("flags")
	}
	req := &gate.Request{All: b[0]&reqAll != 0, Binary: b[0]&reqBinary != 0, Threads: b[0]&reqThreads != 0}
	ni := int(b[1])
	b = b[2:]
	if ni == 0 || ni > MaxItems || len(b) < ni+1 {
		return bad("items")
	}
	var seen [256]bool
	for _, x := range b[:ni] {
		if !gate.Item(x).Valid() || seen[x] {
			return bad("item")
		}
		seen[x] = true
		req.Items = append(req.Items, gate.Item(x))
	}
	b = b[ni:]
	nm := int(b[0])
	b = b[1:]
	if nm > MaxMemRanges || len(b) < 16*nm+4 {
		return bad("mem")
	}
	for range nm {
		req.Mem = append(req.Mem, gate.MemRange{Addr: binary.LittleEndian.Uint64(b), Len: binary.LittleEndian.Uint64(b[8:])})
		b = b[16:]
	}
	np := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if np > MaxPIDs || uint64(len(b)) != 4*uint64(np)+4 || (np == 0) != req.All {
		return bad("pids")
	}
	tid := binary.LittleEndian.Uint32(b[4*np:])
	if tid > MaxPID || tid != 0 && np != 1 {
		return bad("tid")
	}
	req.TID = int(tid)
	seenPID := make(map[uint32]bool, np)
	for i := range np {
		p := binary.LittleEndian.Uint32(b[4*i:])
		if p == 0 || p > MaxPID || seenPID[p] {
			return bad("pid")
		}
		seenPID[p] = true
		req.PIDs = append(req.PIDs, int(p))
	}
	return req, nil
}

// validControl reports whether a control message from the front is
// well formed: its type is known, it carries exactly the descriptors
// and the payload its type has.
func validControl(typ byte, p []byte, fds []int) bool {
	switch typ {
	case msgConn:
		return len(fds) == 2 && len(p) == 0
	case msgThread:
		return len(fds) == 1 && len(p) == 12
	case msgMetric, msgReload, msgQuit:
		return len(fds) == 1 && len(p) == 0
	case msgReject:
		return len(fds) == 0 && len(p) == 1 && p[0] >= 1 && int(p[0]) <= len(RejectReasons)
	}
	return false
}

// encodeThread encodes a thread identity: [tid u32][uid u32][gid u32].
func encodeThread(id Identity) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(id.PID))
	b = binary.LittleEndian.AppendUint32(b, id.UID)
	return binary.LittleEndian.AppendUint32(b, id.GID)
}

// decodeThread decodes what encodeThread wrote (12 bytes, checked by
// validControl).
func decodeThread(b []byte) Identity {
	return Identity{
		Source: FromThread, PidFD: -1,
		PID: int(int32(binary.LittleEndian.Uint32(b))),
		UID: binary.LittleEndian.Uint32(b[4:]), GID: binary.LittleEndian.Uint32(b[8:]),
	}
}

// encodeFinal encodes a final status.
func encodeFinal(code byte, n int, gen uint64, text string) []byte {
	if len(text) > maxText {
		text = text[:maxText]
	}
	b := []byte{code}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint64(b, gen)
	return append(b, text...)
}

func decodeFinal(b []byte) (code byte, n int, gen uint64, text string, err error) {
	if len(b) < 13 || len(b) > 13+maxText {
		return 0, 0, 0, "", fmt.Errorf("%w: final status", errProtocol)
	}
	return b[0], int(binary.LittleEndian.Uint32(b[1:])), binary.LittleEndian.Uint64(b[5:]), string(b[13:]), nil
}

// finalError maps a final code to the error the HTTP side maps to a
// status.
func finalError(code byte, text string) error {
	switch code {
	case codeOK:
		return nil
	case codeGone:
		return gate.ErrCallerGone
	case codeChanged:
		return fmt.Errorf("%s: %w", text, unix.EAGAIN)
	case codeIdent:
		return errors.New(text)
	default:
		return errors.New(text)
	}
}

// codeOf maps a reader-side error to a final code.
func codeOf(err error) byte {
	switch {
	case err == nil:
		return codeOK
	case errors.Is(err, gate.ErrCallerGone):
		return codeGone
	case errors.Is(err, unix.EAGAIN):
		return codeChanged
	}
	return codeInternal
}
