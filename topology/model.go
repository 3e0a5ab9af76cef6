package topology

import (
	"encoding/json"
	"fmt"
)

// Map is one validated version of the cluster topology: which partitions exist,
// which hash range each owns, and which node is its primary and which are its
// replicas.
//
// The zero Map is not valid: it has no partitions, so Partition returns nil
// for every hash. Most callers get a Map from Parse or a Watcher and call
// Lookup (or Partition) and then Candidates for each call.
//
// A Map is immutable once returned by Parse or Validate: share it freely
// between goroutines and never modify it. Its methods are then safe for
// concurrent use.
type Map struct {
	// Epoch is the cluster epoch of this map. A map with a lower epoch than
	// the one in use is ignored by a Watcher.
	Epoch int64 `json:"clusterEpoch"`
	// MasterNodeID names the discovery master that issued the map.
	MasterNodeID string `json:"masterNodeId"`
	// PartitionCount is the number of partitions, equal to len(Partitions).
	PartitionCount int `json:"partitionCount"`
	// Partitions are ordered by HashStart after Parse, whatever the order of
	// the payload.
	Partitions []Partition `json:"partitions"`
}

// Partition is one hash range of the key space and the nodes that serve it.
type Partition struct {
	// Index is the partition's index, unique in the map, in [0, PartitionCount).
	Index int `json:"partitionIndex"`
	// Primary is the node that takes writes: an IP (v4 or v6) or ip:port.
	Primary string `json:"primaryNodeIp"`
	// Replicas serve reads when the primary cannot, in order of preference.
	Replicas []string `json:"replicaNodeIps"`
	// HashStart and HashEnd bound the partition's inclusive range of 32-bit
	// key hashes.
	HashStart uint32 `json:"-"`
	HashEnd   uint32 `json:"-"`
}

// Contains reports whether hash lies in p's inclusive range.
func (p *Partition) Contains(hash uint32) bool {
	return p.HashStart <= hash && hash <= p.HashEnd
}

// wirePartition is a Partition as the discovery master writes it: the hash
// range as 8 hex digits. Pointers tell a missing field from a zero one.
type wirePartition struct {
	Index     *int     `json:"partitionIndex"`
	Primary   *string  `json:"primaryNodeIp"`
	Replicas  []string `json:"replicaNodeIps"`
	HashStart *string  `json:"hashRangeStart"`
	HashEnd   *string  `json:"hashRangeEnd"`
}

// wireMap is a Map as the discovery master writes it.
type wireMap struct {
	Epoch          *int64          `json:"clusterEpoch"`
	MasterNodeID   string          `json:"masterNodeId"`
	PartitionCount *int            `json:"partitionCount"`
	Partitions     []wirePartition `json:"partitions"`
}

// MarshalJSON writes p in the wire format of DESIGN.md, with the hash range
// as 8 lowercase hex digits and a nil Replicas as an empty list.
func (p Partition) MarshalJSON() ([]byte, error) {
	replicas := p.Replicas
	if replicas == nil {
		replicas = []string{}
	}
	start, end := hex8(p.HashStart), hex8(p.HashEnd)
	return json.Marshal(wirePartition{
		Index:     &p.Index,
		Primary:   &p.Primary,
		Replicas:  replicas,
		HashStart: &start,
		HashEnd:   &end,
	})
}

// UnmarshalJSON reads one partition in the wire format. It checks only what
// decoding needs (field types, present fields, 8-digit hex ranges); use Parse
// to read and validate a whole map. Its errors match ErrInvalid.
func (p *Partition) UnmarshalJSON(data []byte) error {
	var w wirePartition
	if err := json.Unmarshal(data, &w); err != nil {
		return decodeError(err)
	}
	q, err := w.partition("")
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// partition converts w, naming fields under prefix (e.g. "partitions[2].").
func (w *wirePartition) partition(prefix string) (Partition, error) {
	p := Partition{Index: -1}
	if w.Index == nil {
		return p, &ValidationError{Partition: -1, Field: prefix + "partitionIndex", Problem: "missing partitionIndex"}
	}
	p.Index = *w.Index
	if w.Primary == nil {
		return p, &ValidationError{Partition: p.Index, Field: prefix + "primaryNodeIp", Problem: "missing primary (primaryNodeIp)"}
	}
	p.Primary = *w.Primary
	p.Replicas = w.Replicas
	var err error
	if p.HashStart, err = parseHex8(w.HashStart, p.Index, prefix+"hashRangeStart"); err != nil {
		return p, err
	}
	if p.HashEnd, err = parseHex8(w.HashEnd, p.Index, prefix+"hashRangeEnd"); err != nil {
		return p, err
	}
	return p, nil
}

// parseHex8 reads exactly 8 hex digits, either case.
func parseHex8(s *string, index int, field string) (uint32, error) {
	if s == nil {
		return 0, &ValidationError{Partition: index, Field: field, Problem: "missing " + field + " (want 8 hex digits)"}
	}
	if len(*s) != 8 {
		return 0, &ValidationError{Partition: index, Field: field,
			Problem: fmt.Sprintf("%q is not 8 hex digits (has %d characters)", *s, len(*s))}
	}
	var v uint32
	for i := 0; i < 8; i++ {
		c := (*s)[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, &ValidationError{Partition: index, Field: field,
				Problem: fmt.Sprintf("%q is not 8 hex digits (bad digit %q)", *s, c)}
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// hex8 formats v as 8 lowercase hex digits.
func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}
