package topology

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// DefaultMaxBytes is the payload size cap of Parse, File and HTTP: 1 MiB,
// room for tens of thousands of partitions.
const DefaultMaxBytes = 1 << 20

// Parse reads a topology map in the JSON format of the discovery master and
// validates it (see Validate), so a map it returns is ready to use and sorted
// by hash range. It rejects a payload over DefaultMaxBytes with an error
// matching ErrTooLarge; every error it returns matches ErrInvalid and is a
// *ValidationError naming the problem. Unknown JSON fields are ignored.
func Parse(data []byte) (*Map, error) {
	return parse(data, DefaultMaxBytes)
}

// parse is Parse with a size cap; maxBytes <= 0 means DefaultMaxBytes.
func parse(data []byte, maxBytes int64) (*Map, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if int64(len(data)) > maxBytes {
		return nil, tooLarge(maxBytes)
	}
	var w wireMap
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, decodeError(locatePartition(data, err))
	}
	if w.Epoch == nil {
		return nil, &ValidationError{Partition: -1, Field: "clusterEpoch", Problem: "missing clusterEpoch"}
	}
	if w.PartitionCount == nil {
		return nil, &ValidationError{Partition: -1, Field: "partitionCount", Problem: "missing partitionCount"}
	}
	m := &Map{
		Epoch:          *w.Epoch,
		MasterNodeID:   w.MasterNodeID,
		PartitionCount: *w.PartitionCount,
	}
	if len(w.Partitions) > 0 {
		m.Partitions = make([]Partition, len(w.Partitions))
	}
	for i := range w.Partitions {
		p, err := w.Partitions[i].partition("partitions[" + strconv.Itoa(i) + "].")
		if err != nil {
			return nil, err
		}
		m.Partitions[i] = p
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// tooLarge is the error for a payload over maxBytes.
func tooLarge(maxBytes int64) error {
	return &ValidationError{Partition: -1,
		Problem: fmt.Sprintf("payload too large: over the %d-byte cap", maxBytes),
		Err:     ErrTooLarge}
}

// locatePartition adds the position to a JSON type error inside a
// partition, which encoding/json reports as "partitions.partitionIndex"
// (or "partitions" for an element that is not an object), so that it reads
// "partitions[1].partitionIndex" as every other problem with a partition
// does. It decodes the partitions one by one to find the
// first that fails; any other error is returned as it is.
func locatePartition(data []byte, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field != "partitions" && !strings.HasPrefix(te.Field, "partitions.") {
		return err
	}
	var w struct {
		Partitions []json.RawMessage `json:"partitions"`
	}
	if json.Unmarshal(data, &w) != nil {
		return err // partitions is not a list
	}
	for i, raw := range w.Partitions {
		var p wirePartition
		var pe *json.UnmarshalTypeError
		if errors.As(json.Unmarshal(raw, &p), &pe) {
			at := "partitions[" + strconv.Itoa(i) + "]"
			if pe.Field != "" {
				at += "." + pe.Field
			}
			pe.Field = at
			return pe
		}
	}
	return err
}

// decodeError turns an error of encoding/json into a *ValidationError.
func decodeError(err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		what := field + " is"
		if field == "" {
			what = "the payload is"
		}
		return &ValidationError{Partition: -1, Field: field, Err: err,
			Problem: fmt.Sprintf("wrong JSON type: %s a JSON %s, want %s", what, te.Value, jsonKind(te.Type))}
	}
	return &ValidationError{Partition: -1, Problem: "not JSON: " + err.Error(), Err: err}
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer in range"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "non-negative integer in range"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.String()
}

// Validate checks every rule of the topology map and returns a
// *ValidationError (matching ErrInvalid) for the first one broken: a
// non-negative epoch; at least one partition; PartitionCount equal to the
// number of partitions; indexes unique and in [0, PartitionCount); a
// non-empty primary; every node a unicast IP (not unspecified or
// multicast) or ip:port with a port in 1-65535; no primary among its own
// replicas and no duplicate replica; HashStart <= HashEnd; and ranges that
// cover 00000000-ffffffff with no gap or overlap.
//
// Validate sorts m.Partitions by HashStart in place, so call it once on a map
// you built yourself, before sharing it. Parse calls it for you.
func (m *Map) Validate() error {
	if m == nil {
		return &ValidationError{Partition: -1, Problem: "nil map"}
	}
	if m.Epoch < 0 {
		return &ValidationError{Partition: -1, Field: "clusterEpoch",
			Problem: fmt.Sprintf("negative clusterEpoch %d", m.Epoch)}
	}
	n := len(m.Partitions)
	if n == 0 {
		return &ValidationError{Partition: -1, Field: "partitions", Problem: "no partitions"}
	}
	if m.PartitionCount != n {
		return &ValidationError{Partition: -1, Field: "partitionCount",
			Problem: fmt.Sprintf("partitionCount mismatch: partitionCount is %d but %d partitions are listed", m.PartitionCount, n)}
	}
	seen := make([]bool, n)
	for i := range m.Partitions {
		if err := m.Partitions[i].validate(i, seen); err != nil {
			return err
		}
	}
	if !slices.IsSortedFunc(m.Partitions, comparePartitions) {
		slices.SortFunc(m.Partitions, comparePartitions)
	}
	return m.validateRanges()
}

func comparePartitions(a, b Partition) int {
	if a.HashStart != b.HashStart {
		if a.HashStart < b.HashStart {
			return -1
		}
		return 1
	}
	if a.HashEnd != b.HashEnd {
		if a.HashEnd < b.HashEnd {
			return -1
		}
		return 1
	}
	return 0
}

// validate checks the rules of one partition, the i-th of the payload.
func (p *Partition) validate(i int, seen []bool) error {
	prefix := "partitions[" + strconv.Itoa(i) + "]."
	bad := func(field, problem string) error {
		idx := p.Index
		if idx < 0 {
			idx = -1
		}
		return &ValidationError{Partition: idx, Field: prefix + field, Problem: problem}
	}
	if p.Index < 0 || p.Index >= len(seen) {
		return bad("partitionIndex", fmt.Sprintf("partitionIndex %d out of range 0-%d", p.Index, len(seen)-1))
	}
	if seen[p.Index] {
		return bad("partitionIndex", fmt.Sprintf("duplicate partitionIndex %d", p.Index))
	}
	seen[p.Index] = true
	if p.Primary == "" {
		return bad("primaryNodeIp", "empty primary (primaryNodeIp)")
	}
	primary, problem := nodeKey(p.Primary)
	if problem != "" {
		return bad("primaryNodeIp", "primary "+problem)
	}
	keys := make([]string, 0, len(p.Replicas))
	for j, r := range p.Replicas {
		field := "replicaNodeIps[" + strconv.Itoa(j) + "]"
		if r == "" {
			return bad(field, "empty replica")
		}
		k, problem := nodeKey(r)
		if problem != "" {
			return bad(field, "replica "+problem)
		}
		if k == primary {
			return bad(field, fmt.Sprintf("primary %q is listed as its own replica", p.Primary))
		}
		if slices.Contains(keys, k) {
			return bad(field, fmt.Sprintf("duplicate replica %q", r))
		}
		keys = append(keys, k)
	}
	if p.HashStart > p.HashEnd {
		return bad("hashRangeStart", fmt.Sprintf("hashRangeStart %s is after hashRangeEnd %s", hex8(p.HashStart), hex8(p.HashEnd)))
	}
	return nil
}

// validateRanges checks that the sorted ranges cover the hash space exactly.
func (m *Map) validateRanges() error {
	ps := m.Partitions
	if ps[0].HashStart != 0 {
		return &ValidationError{Partition: ps[0].Index, Field: "hashRangeStart",
			Problem: fmt.Sprintf("not covering 00000000-ffffffff: the first range starts at %s, not 00000000", hex8(ps[0].HashStart))}
	}
	for i := 1; i < len(ps); i++ {
		prev, cur := &ps[i-1], &ps[i]
		if cur.HashStart <= prev.HashEnd {
			return &ValidationError{Partition: cur.Index, Field: "hashRangeStart",
				Problem: fmt.Sprintf("overlap: partitions %d and %d both hold hashes %s-%s",
					prev.Index, cur.Index, hex8(cur.HashStart), hex8(min(prev.HashEnd, cur.HashEnd)))}
		}
		if cur.HashStart != prev.HashEnd+1 {
			return &ValidationError{Partition: cur.Index, Field: "hashRangeStart",
				Problem: fmt.Sprintf("gap: hashes %s-%s belong to no partition (between partitions %d and %d)",
					hex8(prev.HashEnd+1), hex8(cur.HashStart-1), prev.Index, cur.Index)}
		}
	}
	if last := &ps[len(ps)-1]; last.HashEnd != 0xffffffff {
		return &ValidationError{Partition: last.Index, Field: "hashRangeEnd",
			Problem: fmt.Sprintf("not covering 00000000-ffffffff: the last range ends at %s, not ffffffff", hex8(last.HashEnd))}
	}
	return nil
}

// parseNode reads a node: an IPv4 or IPv6 address, a.b.c.d:port,
// [v6]:port or [v6]. port is -1 when the node names none. problem is empty
// when the node is valid, else it says what is wrong.
func parseNode(s string) (addr netip.Addr, port int, problem string) {
	port = -1
	if s == "" {
		return addr, port, "address is empty"
	}
	host, portStr, hasPort := s, "", false
	bracket := s[0] == '['
	if bracket {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return addr, port, fmt.Sprintf("%q is not an IP address (no closing ']')", s)
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return addr, port, fmt.Sprintf("%q is not an IP address or ip:port", s)
			}
			portStr, hasPort = rest[1:], true
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		host, portStr, hasPort = s[:i], s[i+1:], true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return addr, port, fmt.Sprintf("%q is not an IP address", host)
	}
	if bracket && !addr.Is6() {
		return addr, port, fmt.Sprintf("%q: only an IPv6 address goes in brackets", s)
	}
	if u := addr.Unmap(); u.IsUnspecified() || u.IsMulticast() {
		// 0.0.0.0 would dial this machine; neither names a node.
		return addr, port, fmt.Sprintf("%q is not a node's address (unspecified or multicast)", host)
	}
	if !hasPort {
		return addr, port, ""
	}
	if portStr == "" {
		return addr, port, fmt.Sprintf("%q has an empty port after ':'", s)
	}
	if len(portStr) > 5 {
		if strings.Trim(portStr, "0123456789") == "" {
			return addr, port, fmt.Sprintf("port %s out of range 1-65535 in %q", portStr, s)
		}
		return addr, port, fmt.Sprintf("port %q is not a number in %q", portStr, s)
	}
	v := 0
	for i := 0; i < len(portStr); i++ {
		c := portStr[i]
		if c < '0' || c > '9' {
			return addr, port, fmt.Sprintf("port %q is not a number in %q", portStr, s)
		}
		v = v*10 + int(c-'0')
	}
	if v < 1 || v > 65535 {
		return addr, port, fmt.Sprintf("port %d out of range 1-65535 in %q", v, s)
	}
	return addr, v, ""
}

// nodeKey is a canonical form of a node, equal for two spellings of the same
// address and port (an IPv4 address and its IPv4-mapped IPv6 form reach the
// same host), or a problem.
func nodeKey(s string) (key, problem string) {
	addr, port, problem := parseNode(s)
	if problem != "" {
		return "", problem
	}
	addr = addr.Unmap()
	if port < 0 {
		return addr.String(), ""
	}
	return netip.AddrPortFrom(addr, uint16(port)).String(), ""
}

// SplitNode returns the host:port to dial for node, an IP (v4 or v6) or
// ip:port as the map lists it: a node with a port keeps it, a node without
// one gets defaultPort, and an IPv6 address is bracketed ("::1" with 8080
// gives "[::1]:8080"). A node that is not valid, or a node without port when
// defaultPort is not in 1-65535, is returned unchanged, so the dial error
// names it.
func SplitNode(node string, defaultPort int) string {
	addr, port, problem := parseNode(node)
	if problem != "" {
		return node
	}
	if port >= 0 {
		return node
	}
	if defaultPort < 1 || defaultPort > 65535 {
		return node
	}
	return netip.AddrPortFrom(addr, uint16(defaultPort)).String()
}
