package policy

import "math/bits"

// bitset is a set of small integers (class ids, rule ids).
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) has(i int) bool { return i>>6 < len(b) && b[i>>6]&(1<<(uint(i)&63)) != 0 }

func (b bitset) intersects(o bitset) bool {
	n := min(len(b), len(o))
	for i := range n {
		if b[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// members returns the set's elements in order.
func (b bitset) members() []int {
	var out []int
	for i, w := range b {
		for ; w != 0; w &= w - 1 {
			out = append(out, i*64+bits.TrailingZeros64(w))
		}
	}
	return out
}

func tz(w uint64) int { return bits.TrailingZeros64(w) }
