package topology_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rampart-go/rampart/topology"
)

// checkInvariants checks what every map returned by Parse promises.
func checkInvariants(t *testing.T, m *topology.Map) {
	t.Helper()
	ps := m.Partitions
	if m.Epoch < 0 || len(ps) == 0 || m.PartitionCount != len(ps) {
		t.Fatalf("bad header: epoch %d, count %d, %d partitions", m.Epoch, m.PartitionCount, len(ps))
	}
	if ps[0].HashStart != 0 || ps[len(ps)-1].HashEnd != 0xffffffff {
		t.Fatalf("ranges do not cover the space: %08x..%08x", ps[0].HashStart, ps[len(ps)-1].HashEnd)
	}
	seen := make(map[int]bool)
	for i := range ps {
		p := &ps[i]
		if i > 0 && p.HashStart != ps[i-1].HashEnd+1 {
			t.Fatalf("partition %d starts at %08x after %08x", p.Index, p.HashStart, ps[i-1].HashEnd)
		}
		if p.HashStart > p.HashEnd || p.Primary == "" || seen[p.Index] || p.Index < 0 || p.Index >= len(ps) {
			t.Fatalf("bad partition %+v", p)
		}
		seen[p.Index] = true
		mid := p.HashStart + (p.HashEnd-p.HashStart)/2
		for _, h := range []uint32{p.HashStart, mid, p.HashEnd} {
			if got := m.Partition(h); got != p {
				t.Fatalf("Partition(%08x) = %+v, want %+v", h, got, p)
			}
		}
		c := m.Candidates(nil, p, false, false, nil)
		if len(c) != 1+len(p.Replicas) || c[0] != p.Primary {
			t.Fatalf("read candidates %q of %+v", c, p)
		}
		if c := m.Candidates(nil, p, true, false, nil); len(c) != 1 || c[0] != p.Primary {
			t.Fatalf("write candidates %q of %+v", c, p)
		}
	}
	for _, key := range []string{"", "a", "user-42", m.MasterNodeID} {
		if p := m.Lookup(key); p == nil || !p.Contains(topology.FNV1a32(key)) {
			t.Fatalf("Lookup(%q) = %+v", key, p)
		}
	}
}

// normalize makes nil and empty replica lists equal, for comparisons.
func normalize(m *topology.Map) {
	for i := range m.Partitions {
		if len(m.Partitions[i].Replicas) == 0 {
			m.Partitions[i].Replicas = nil
		}
	}
}

func FuzzParse(f *testing.F) {
	if names, _ := filepath.Glob(filepath.Join(fixtureDir, "*.json")); len(names) > 0 {
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(threeJSON))
	f.Add([]byte(`{"clusterEpoch":0,"partitionCount":1,"partitions":[{"partitionIndex":0,"primaryNodeIp":"::1","hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := topology.Parse(data)
		if err != nil {
			var ve *topology.ValidationError
			if m != nil || !errors.Is(err, topology.ErrInvalid) || !errors.As(err, &ve) || ve.Problem == "" {
				t.Fatalf("Parse = %v, %v: want nil and a *ValidationError", m, err)
			}
			return
		}
		checkInvariants(t, m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		m2, err := topology.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(m)) = %v\n%s", err, out)
		}
		normalize(m)
		normalize(m2)
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the map:\n%+v\n%+v", m, m2)
		}
	})
}
