// Package blockmap is a map from 64-bit block hashes to int32 slots: open
// addressing with linear probing and backward-shift deletion. The KV cache
// of the engine model and the gateway's prefix index insert and delete
// millions of block hashes; Go's built-in map leaves tombstones under that
// churn and its lookups slow down several-fold, which this map does not
// (a deletion moves the entries after it back instead).
package blockmap

// Map maps uint64 keys to int32 values. The zero Map is not usable; call
// New. It is not safe for concurrent use.
type Map struct {
	keys    []uint64 // 0 marks an empty slot; key 0 lives in zero/hasZero
	vals    []int32
	mask    uint64
	shift   uint
	n       int
	hasZero bool
	zero    int32
}

// New returns a map sized for about hint entries before it grows.
func New(hint int) *Map {
	m := &Map{}
	m.alloc(max(hint*2, 16))
	return m
}

func (m *Map) alloc(size int) {
	c := 16
	for c < size {
		c <<= 1
	}
	m.keys = make([]uint64, c)
	m.vals = make([]int32, c)
	m.mask = uint64(c - 1)
	m.shift = 64
	for s := c; s > 1; s >>= 1 {
		m.shift--
	}
}

// home is a key's preferred slot (Fibonacci hashing: keys need not be
// well mixed).
func (m *Map) home(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> m.shift }

// Len is the number of entries.
func (m *Map) Len() int {
	if m.hasZero {
		return m.n + 1
	}
	return m.n
}

// Get returns k's value.
func (m *Map) Get(k uint64) (int32, bool) {
	if k == 0 {
		if m.hasZero {
			return m.zero, true
		}
		return 0, false
	}
	for i := m.home(k); ; i = (i + 1) & m.mask {
		switch m.keys[i] {
		case k:
			return m.vals[i], true
		case 0:
			return 0, false
		}
	}
}

// Put sets k's value.
func (m *Map) Put(k uint64, v int32) {
	if k == 0 {
		m.zero, m.hasZero = v, true
		return
	}
	if 2*(m.n+1) > len(m.keys) {
		m.grow()
	}
	for i := m.home(k); ; i = (i + 1) & m.mask {
		switch m.keys[i] {
		case k:
			m.vals[i] = v
			return
		case 0:
			m.keys[i], m.vals[i] = k, v
			m.n++
			return
		}
	}
}

func (m *Map) grow() {
	keys, vals := m.keys, m.vals
	m.alloc(2 * len(keys))
	m.n = 0
	for i, k := range keys {
		if k != 0 {
			m.Put(k, vals[i])
		}
	}
}

// Delete removes k and reports whether it was there.
func (m *Map) Delete(k uint64) bool {
	if k == 0 {
		had := m.hasZero
		m.hasZero = false
		return had
	}
	i := m.home(k)
	for ; m.keys[i] != k; i = (i + 1) & m.mask {
		if m.keys[i] == 0 {
			return false
		}
	}
	// Shift back every later entry of the run that may sit in i.
	for j := (i + 1) & m.mask; m.keys[j] != 0; j = (j + 1) & m.mask {
		h := m.home(m.keys[j])
		// The entry at j may move to i if its home is not in (i, j]
		// cyclically.
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			m.keys[i], m.vals[i] = m.keys[j], m.vals[j]
			i = j
		}
	}
	m.keys[i] = 0
	m.n--
	return true
}
