package topology

// Hasher maps a partition key to the 32-bit hash that picks its partition.
// A nil Hasher means FNV1a32. Every client of a cluster must use the same
// Hasher as the cluster itself.
type Hasher func(key string) uint32

// Sum returns h(key), or FNV1a32(key) when h is nil.
func (h Hasher) Sum(key string) uint32 {
	if h == nil {
		return FNV1a32(key)
	}
	return h(key)
}

// FNV1a32 returns the 32-bit FNV-1a hash of key, the default partition hash.
// It does not allocate.
func FNV1a32(key string) uint32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	return h
}

// Partition returns the partition whose range holds hash, by binary search
// over m.Partitions; it does not allocate. It returns nil only when m is nil
// or not valid (a validated map covers every hash).
func (m *Map) Partition(hash uint32) *Partition {
	if m == nil {
		return nil
	}
	ps := m.Partitions
	// Find the first partition whose HashEnd >= hash.
	lo, hi := 0, len(ps)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if ps[mid].HashEnd < hash {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(ps) || ps[lo].HashStart > hash {
		return nil
	}
	return &ps[lo]
}

// Lookup returns the partition of key under the default hash, FNV1a32. With
// another Hasher h, call m.Partition(h.Sum(key)).
func (m *Map) Lookup(key string) *Partition {
	return m.Partition(FNV1a32(key))
}

// Candidates appends to dst the nodes to try, in order, for one call to
// partition p, and returns the extended slice. Pass a reused buffer such as
// buf[:0] and it does not allocate.
//
// A read (write false) lists the primary, then the replicas in map order. A
// write lists the primary only, unless allowReplicaWrites is true, when the
// replicas follow it as for a read. Nodes for which healthy returns false
// (an open breaker, say) are left out; a nil healthy means every node is
// healthy. When no node is left, Candidates returns dst unchanged: the
// caller reports that no node is healthy. m is not used and may be nil.
func (m *Map) Candidates(dst []string, p *Partition, write, allowReplicaWrites bool, healthy func(node string) bool) []string {
	if p == nil {
		return dst
	}
	if p.Primary != "" && (healthy == nil || healthy(p.Primary)) {
		dst = append(dst, p.Primary)
	}
	if write && !allowReplicaWrites {
		return dst
	}
	for _, r := range p.Replicas {
		if healthy == nil || healthy(r) {
			dst = append(dst, r)
		}
	}
	return dst
}

// Nodes returns every node of m once, primaries and replicas, in partition
// order (by hash range) and, within a partition, primary first. A resolver
// uses it to learn the addresses to connect to.
func (m *Map) Nodes() []string {
	if m == nil {
		return nil
	}
	seen := make(map[string]bool)
	var out []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for i := range m.Partitions {
		add(m.Partitions[i].Primary)
		for _, r := range m.Partitions[i].Replicas {
			add(r)
		}
	}
	return out
}
