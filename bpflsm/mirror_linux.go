package bpflsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// The mirror is a copy of the rule set in force for readers in user
// space that may not make bpf(2) calls: procgate serve's reader, whose
// seccomp filter forbids them and which holds no CAP_BPF (before 6.5
// every bpf command needs it where unprivileged BPF is disabled). It is
// an array map created with BPF_F_MMAPABLE and pinned with the program;
// a reader maps it while it still may (OpenMirror) and from then on
// reads it as memory, without a system call.
//
// Layout, in 64-bit little-endian words: 0 a sequence number, odd while
// the mirror is rewritten (a seqlock); 1 the length in bytes of the rule
// set's image, which starts at word 3; 2 flags (mirrorDetached). The image is the program's rule-set value (struct
// ruleset) followed by the number of hashed-rule entries and the entries
// (struct pair_key, struct pair_val), each as the program holds it.
//
// Attach writes it before the hooks are linked. Reload makes it odd
// before it swaps the program's rule set and writes the new image after
// the swap: a reader never takes the old rule set for the new one (it
// fails closed in between). Detach marks it detached before it unpins.
const (
	mirrorSeq = iota
	mirrorLen
	mirrorFlags
	mirrorHeader // words
)

// mirrorDetached: the attachment was detached; a rule set pinned since
// then is another attachment, with another mirror.
const mirrorDetached = 1

// pinMirror is the mirror's pin under the pin directory.
const pinMirror = "mirror"

// mirrorWords is the mirror's size: the header and the largest image.
func mirrorWords() uint32 {
	n := binary.Size(ptraceRuleset{}) + 8 + (bpf.MaxPairs+1)*(binary.Size(ptracePairKey{})+binary.Size(ptracePairVal{}))
	return uint32(mirrorHeader + (n+7)/8)
}

// ErrDetached says that the mirror's attachment was detached.
var ErrDetached = errors.New("procgate's BPF LSM program was detached")

// image lays enc out as the mirror holds it.
func image(enc *encoded) ([]byte, error) {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, enc.val); err != nil {
		return nil, err
	}
	if err := binary.Write(&b, binary.LittleEndian, uint64(len(enc.pairs))); err != nil {
		return nil, err
	}
	for k, v := range enc.pairs {
		if err := binary.Write(&b, binary.LittleEndian, k); err != nil {
			return nil, err
		}
		if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// fromImage is image's inverse: the rule set the image holds.
func fromImage(img []byte) (*bpf.RuleSet, error) {
	r := bytes.NewReader(img)
	var val ptraceRuleset
	if err := binary.Read(r, binary.LittleEndian, &val); err != nil {
		return nil, fmt.Errorf("rule set: %w", err)
	}
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("hashed rules: %w", err)
	}
	if n > bpf.MaxPairs+1 {
		return nil, fmt.Errorf("%d hashed rules, at most %d", n, bpf.MaxPairs+1)
	}
	pairs := make(map[ptracePairKey]ptracePairVal, n)
	for range n {
		var k ptracePairKey
		var v ptracePairVal
		if err := binary.Read(r, binary.LittleEndian, &k); err != nil {
			return nil, fmt.Errorf("hashed rules: %w", err)
		}
		if err := binary.Read(r, binary.LittleEndian, &v); err != nil {
			return nil, fmt.Errorf("hashed rules: %w", err)
		}
		pairs[k] = v
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes past the hashed rules", r.Len())
	}
	if e, ok := epochOf(pairs); !ok || e != val.Epoch {
		return nil, fmt.Errorf("hashed rules of another epoch than the rule set's %d", val.Epoch)
	}
	return decode(&val, pairs)
}

// mapping is a mirror mapped into memory.
type mapping struct {
	mem []byte
}

func mapMirror(m *ebpf.Map, write bool) (*mapping, error) {
	size := int(m.MaxEntries()) * 8
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	prot := unix.PROT_READ
	if write {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(m.FD(), 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the mirror: %w", err)
	}
	return &mapping{mem: mem}, nil
}

func (p *mapping) word(i int) *uint64 { return (*uint64)(unsafe.Pointer(&p.mem[i*8])) }

// close unmaps the mirror, once: a second munmap of the range could
// unmap what was mapped there since.
func (p *mapping) close() error {
	if p.mem == nil {
		return nil
	}
	err := unix.Munmap(p.mem)
	p.mem = nil
	return err
}

// begin makes the mirror odd: readers fail closed until end.
func (p *mapping) begin() {
	s := atomic.LoadUint64(p.word(mirrorSeq))
	if s&1 == 0 {
		atomic.StoreUint64(p.word(mirrorSeq), s+1)
	}
}

// end writes img as the image and makes the mirror even again; with img
// nil it keeps the image it holds (a reload that failed).
func (p *mapping) end(img []byte) error {
	if img != nil {
		if mirrorHeader*8+len(img) > len(p.mem) {
			return fmt.Errorf("bpflsm: a rule set image of %d bytes, the mirror holds %d", len(img), len(p.mem)-mirrorHeader*8)
		}
		copy(p.mem[mirrorHeader*8:], img)
		atomic.StoreUint64(p.word(mirrorLen), uint64(len(img)))
	}
	s := atomic.LoadUint64(p.word(mirrorSeq))
	if s&1 != 0 {
		atomic.StoreUint64(p.word(mirrorSeq), s+1)
	}
	return nil
}

// publish writes enc's image into the mirror around swap, which puts
// enc in force in the program (nil: nothing to swap): readers fail
// closed from before the swap until the image is in, and keep the old
// image if the swap fails.
func (p *mapping) publish(enc *encoded, swap func() error) error {
	img, err := image(enc)
	if err != nil {
		return fmt.Errorf("bpflsm: the rule set's image: %w", err)
	}
	p.begin()
	if swap != nil {
		if err := swap(); err != nil {
			return errors.Join(err, p.end(nil))
		}
	}
	return p.end(img)
}

// detach marks the mirror detached, for good.
func (p *mapping) detach() {
	atomic.StoreUint64(p.word(mirrorFlags), mirrorDetached)
	p.begin()
}

// newMirror creates a mirror map (not pinned) holding enc.
func newMirror(enc *encoded) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "procgate_mirror", Type: ebpf.Array, KeySize: 4, ValueSize: 8,
		MaxEntries: mirrorWords(), Flags: unix.BPF_F_MMAPABLE,
	})
	if err != nil {
		return nil, fmt.Errorf("bpflsm: create the rule set's mirror: %w", err)
	}
	p, err := mapMirror(m, true)
	if err == nil {
		err = errors.Join(p.publish(enc, nil), p.close())
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("bpflsm: the rule set's mirror: %w", err)
	}
	return m, nil
}

// loadMirror opens the mirror pinned under dir; nil, nil when none is.
// Opened for writing even to read it: the kernel maps no map opened
// read-only (EINVAL).
func loadMirror(dir string) (*ebpf.Map, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinMirror), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bpflsm: open the rule set's mirror: %w", err)
	}
	return m, nil
}

// openMirrorRW maps the mirror pinned under dir for writing; nil, nil
// when none is pinned.
func openMirrorRW(dir string) (*mapping, error) {
	m, err := loadMirror(dir)
	if m == nil || err != nil {
		return nil, err
	}
	defer m.Close()
	return mapMirror(m, true)
}

// Mirror is the rule set's mirror mapped read-only (see OpenMirror).
// Its methods are safe for concurrent use.
type Mirror struct {
	p *mapping

	mu     sync.Mutex
	seq    uint64 // of the cached rule set
	cached *bpf.RuleSet
}

// OpenMirror maps the mirror of the attachment pinned under dir, for
// reading without system calls from then on (RuleSet): call it before
// giving up the privilege to open pins (CAP_BPF before 6.5, bpf(2)
// itself). Nil, nil when nothing is pinned.
func OpenMirror(dir string) (*Mirror, error) {
	// Mapped for reading only. The mapping could be made writable again
	// (mprotect: the descriptor was opened for writing), which would let
	// a subverted reader corrupt only its own model, never the
	// program's rule set.
	m, err := loadMirror(dir)
	if m == nil || err != nil {
		return nil, err
	}
	defer m.Close()
	if m.MaxEntries() != mirrorWords() || m.ValueSize() != 8 {
		return nil, fmt.Errorf("bpflsm: the rule set's mirror has %d entries of %d bytes, want %d of 8 (another version's attachment)", m.MaxEntries(), m.ValueSize(), mirrorWords())
	}
	p, err := mapMirror(m, false)
	if err != nil {
		return nil, fmt.Errorf("bpflsm: %w", err)
	}
	return &Mirror{p: p}, nil
}

// Seq returns the mirror's sequence number, which changes with every
// reload (odd while one is in progress) and when the attachment is
// detached: a reader that caches what it derived from the rule set keys
// it on Seq.
func (m *Mirror) Seq() uint64 {
	return atomic.LoadUint64(m.p.word(mirrorSeq)) ^ atomic.LoadUint64(m.p.word(mirrorFlags))<<63
}

// Close unmaps the mirror; the Mirror must not be used after.
func (m *Mirror) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p.close()
}

// mirrorWait bounds how long RuleSet waits for a reload to finish.
const mirrorWait = 500 * time.Millisecond

// RuleSet returns the rule set the program enforces, as the mirror
// holds it: the same pointer while it does not change. An error wraps
// ErrDetached when the attachment was detached, ErrUnreadable when the
// mirror is being rewritten for longer than a reload takes or holds no
// valid image.
func (m *Mirror) RuleSet() (*bpf.RuleSet, error) {
	deadline := time.Now().Add(mirrorWait)
	for {
		s1 := atomic.LoadUint64(m.p.word(mirrorSeq))
		if atomic.LoadUint64(m.p.word(mirrorFlags))&mirrorDetached != 0 {
			return nil, ErrDetached
		}
		if s1&1 == 0 {
			rs, ok, err := m.read(s1)
			if ok {
				return rs, err
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: its mirror was rewritten throughout %v", ErrUnreadable, mirrorWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// read decodes the image of sequence number s1 (even), or the cached
// rule set of it; ok false when the mirror changed meanwhile.
func (m *Mirror) read(s1 uint64) (*bpf.RuleSet, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cached != nil && m.seq == s1 {
		return m.cached, true, nil
	}
	n := atomic.LoadUint64(m.p.word(mirrorLen))
	if n == 0 || n > uint64(len(m.p.mem)-mirrorHeader*8) {
		if atomic.LoadUint64(m.p.word(mirrorSeq)) != s1 {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("%w: its mirror holds an image of %d bytes", ErrUnreadable, n)
	}
	img := make([]byte, n)
	copy(img, m.p.mem[mirrorHeader*8:])
	if atomic.LoadUint64(m.p.word(mirrorSeq)) != s1 {
		return nil, false, nil
	}
	rs, err := fromImage(img)
	if err != nil {
		return nil, true, fmt.Errorf("%w: its mirror: %w", ErrUnreadable, err)
	}
	m.seq, m.cached = s1, rs
	return rs, true, nil
}
