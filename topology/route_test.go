package topology_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/rampart-go/rampart/topology"
)

func mustParse(t testing.TB, s string) *topology.Map {
	t.Helper()
	m, err := topology.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFNV1a32(t *testing.T) {
	// Reference values of 32-bit FNV-1a.
	for key, want := range map[string]uint32{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := topology.FNV1a32(key); got != want {
			t.Errorf("FNV1a32(%q) = %08x, want %08x", key, got, want)
		}
		if got := topology.Hasher(nil).Sum(key); got != want {
			t.Errorf("nil Hasher.Sum(%q) = %08x", key, got)
		}
	}
	if got := topology.Hasher(func(string) uint32 { return 7 }).Sum("x"); got != 7 {
		t.Errorf("custom Hasher.Sum = %d", got)
	}
}

func TestPartitionBoundaries(t *testing.T) {
	m := mustParse(t, threeJSON)
	for _, tt := range []struct {
		hash uint32
		want int
	}{
		{0, 0}, {0x55555555, 0}, {0x55555556, 1}, {0x80000000, 1}, {0xaaaaaaaa, 1},
		{0xaaaaaaab, 2}, {0xffffffff, 2},
	} {
		if p := m.Partition(tt.hash); p == nil || p.Index != tt.want || !p.Contains(tt.hash) {
			t.Errorf("Partition(%08x) = %+v, want index %d", tt.hash, p, tt.want)
		}
	}
	if p := m.Lookup("user-42"); p.Index != 0 { // FNV1a32("user-42") = 026073ab
		t.Errorf("Lookup(user-42) = %d", p.Index)
	}
	if p := (*topology.Map)(nil).Partition(1); p != nil {
		t.Errorf("nil map Partition = %v", p)
	}
}

func TestCandidates(t *testing.T) {
	m := mustParse(t, threeJSON)
	p := m.Partition(0) // 127.0.1.5, replicas 127.0.1.6, 127.0.1.7
	down := func(nodes ...string) func(string) bool {
		return func(n string) bool { return !slices.Contains(nodes, n) }
	}
	tests := []struct {
		name          string
		write, allowW bool
		healthy       func(string) bool
		want          []string
	}{
		{"read", false, false, nil, []string{"127.0.1.5", "127.0.1.6", "127.0.1.7"}},
		{"read primary down", false, false, down("127.0.1.5"), []string{"127.0.1.6", "127.0.1.7"}},
		{"read replica down", false, false, down("127.0.1.6"), []string{"127.0.1.5", "127.0.1.7"}},
		{"read all down", false, false, down("127.0.1.5", "127.0.1.6", "127.0.1.7"), nil},
		{"write", true, false, nil, []string{"127.0.1.5"}},
		{"write primary down", true, false, down("127.0.1.5"), nil},
		{"write opt-in", true, true, nil, []string{"127.0.1.5", "127.0.1.6", "127.0.1.7"}},
		{"write opt-in primary down", true, true, down("127.0.1.5"), []string{"127.0.1.6", "127.0.1.7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]string, 0, 4)
			got := m.Candidates(buf, p, tt.write, tt.allowW, tt.healthy)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Candidates = %q, want %q", got, tt.want)
			}
		})
	}
	if got := m.Candidates([]string{"x"}, nil, false, false, nil); !slices.Equal(got, []string{"x"}) {
		t.Errorf("nil partition: %q", got)
	}
	if got := m.Nodes(); len(got) != 7 || got[0] != "127.0.1.5" {
		t.Errorf("Nodes = %q", got)
	}
}

func TestCandidatesDoNotAllocate(t *testing.T) {
	m := mustParse(t, threeJSON)
	buf := make([]string, 0, 8)
	healthy := func(n string) bool { return n != "127.0.2.5" }
	allocs := testing.AllocsPerRun(100, func() {
		buf = m.Candidates(buf[:0], m.Lookup("user-7"), false, false, healthy)
	})
	if allocs != 0 {
		t.Errorf("key -> candidates allocates %v times", allocs)
	}
}

// BenchmarkCandidates measures key -> partition -> candidate list, the work
// the failover step does for every call.
func BenchmarkCandidates(b *testing.B) {
	m := mustParse(b, threeJSON)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i*7919)
	}
	buf := make([]string, 0, 8)
	healthy := func(n string) bool { return n != "127.0.2.5" }
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := m.Lookup(keys[i&63])
		buf = m.Candidates(buf[:0], p, false, false, healthy)
		i++
	}
	if len(buf) == 0 {
		b.Fatal("no candidates")
	}
}

// BenchmarkCandidates1024 is BenchmarkCandidates on a map of 1024
// partitions, to show the binary search.
func BenchmarkCandidates1024(b *testing.B) {
	const n = 1024
	m := &topology.Map{Epoch: 1, PartitionCount: n}
	step := uint32(1<<32/n - 1)
	for i := 0; i < n; i++ {
		start := uint32(i) * (step + 1)
		m.Partitions = append(m.Partitions, topology.Partition{
			Index: i, Primary: "127.0.0." + strconv.Itoa(i%250+1), Replicas: []string{"127.0.1." + strconv.Itoa(i%250+1)},
			HashStart: start, HashEnd: start + step,
		})
	}
	if err := m.Validate(); err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i*7919)
	}
	buf := make([]string, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = m.Candidates(buf[:0], m.Lookup(keys[i&63]), false, false, nil)
		i++
	}
}
