package topology_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rampart-go/rampart/topology"
)

// fixtureDir holds the shared fixtures; CI clones shared/ beside main/.
const fixtureDir = "../../shared/fixtures/topology"

// fixtures returns name -> content of every fixture, or skips t.
func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil || len(names) == 0 {
		t.Skipf("no fixtures in %s: %v", fixtureDir, err)
	}
	out := make(map[string][]byte)
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = data
	}
	return out
}

// wantProblem lists, for each invalid fixture, the words its error must
// contain and the field it must name.
var wantProblem = map[string]struct {
	words []string
	field string
}{
	"invalid-bad-hex.json":            {[]string{"5555555g", "not 8 hex digits"}, "partitions[0].hashRangeEnd"},
	"invalid-short-hex.json":          {[]string{"555555", "not 8 hex digits"}, "partitions[0].hashRangeEnd"},
	"invalid-bad-ip.json":             {[]string{"10.0.2.500", "not an IP address"}, "partitions[1].primaryNodeIp"},
	"invalid-bad-port.json":           {[]string{"port 99999", "out of range"}, "partitions[1].primaryNodeIp"},
	"invalid-count-mismatch.json":     {[]string{"partitionCount mismatch", "4", "3"}, "partitionCount"},
	"invalid-duplicate-index.json":    {[]string{"duplicate partitionIndex 1"}, "partitions[2].partitionIndex"},
	"invalid-duplicate-replica.json":  {[]string{"duplicate replica", "127.0.1.6"}, "partitions[0].replicaNodeIps[1]"},
	"invalid-empty-primary.json":      {[]string{"empty primary"}, "partitions[0].primaryNodeIp"},
	"invalid-gap.json":                {[]string{"gap", "55555556-55555556"}, "hashRangeStart"},
	"invalid-overlap.json":            {[]string{"overlap", "55555555-55555555"}, "hashRangeStart"},
	"invalid-negative-epoch.json":     {[]string{"negative clusterEpoch -3"}, "clusterEpoch"},
	"invalid-no-partitions.json":      {[]string{"no partitions"}, "partitions"},
	"invalid-not-covering-start.json": {[]string{"not covering", "starts at 00000001"}, "hashRangeStart"},
	"invalid-not-covering-end.json":   {[]string{"not covering", "ends at fffffffe"}, "hashRangeEnd"},
	"invalid-not-json.json":           {[]string{"not JSON"}, ""},
	"invalid-primary-as-replica.json": {[]string{"127.0.2.5", "own replica"}, "partitions[1].replicaNodeIps[1]"},
	"invalid-start-after-end.json":    {[]string{"hashRangeStart 60000000 is after hashRangeEnd 10000000"}, "partitions[0].hashRangeStart"},
	"invalid-wrong-types.json":        {[]string{"wrong JSON type", "clusterEpoch", "string"}, "clusterEpoch"},
}

func TestFixtures(t *testing.T) {
	for name, data := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			m, err := topology.Parse(data)
			switch {
			case strings.HasPrefix(name, "valid-"):
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				checkInvariants(t, m)
			case strings.HasPrefix(name, "invalid-"):
				want, ok := wantProblem[name]
				if !ok {
					t.Fatalf("new fixture %s: add its expected problem to wantProblem", name)
				}
				if err == nil || m != nil {
					t.Fatalf("Parse = %v, %v; want rejection", m, err)
				}
				if !errors.Is(err, topology.ErrInvalid) {
					t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
				}
				var ve *topology.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("errors.As(%v, *ValidationError) = false", err)
				}
				for _, w := range want.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if ve.Field != want.field {
					t.Errorf("Field = %q, want %q (error %q)", ve.Field, want.field, err)
				}
				if !strings.HasPrefix(err.Error(), "topology: invalid map: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
			default:
				t.Fatalf("fixture %s is neither valid- nor invalid-", name)
			}
		})
	}
}

func TestValidFixtureDetails(t *testing.T) {
	fx := fixtures(t)
	m, err := topology.Parse(fx["valid-unordered-partitions.json"])
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range m.Partitions {
		if p.Index != i {
			t.Errorf("Partitions[%d].Index = %d; want sorted by range", i, p.Index)
		}
	}
	m, err = topology.Parse(fx["valid-single-partition-uppercase-hex.json"])
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Partitions[0]; p.HashStart != 0 || p.HashEnd != 0xffffffff || len(p.Replicas) != 0 {
		t.Errorf("partition = %+v", p)
	}
	m, err = topology.Parse(fx["valid-ipv6.json"])
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Partition(0xffffffff).Primary; got != "[::1]:19090" {
		t.Errorf("primary = %q", got)
	}
}

// threeJSON is the example map of DESIGN.md.
const threeJSON = `{
  "clusterEpoch": 10294, "masterNodeId": "m", "partitionCount": 3,
  "partitions": [
    {"partitionIndex": 0, "primaryNodeIp": "127.0.1.5", "replicaNodeIps": ["127.0.1.6", "127.0.1.7"],
     "hashRangeStart": "00000000", "hashRangeEnd": "55555555"},
    {"partitionIndex": 1, "primaryNodeIp": "127.0.2.5", "replicaNodeIps": ["127.0.2.6"],
     "hashRangeStart": "55555556", "hashRangeEnd": "aaaaaaaa"},
    {"partitionIndex": 2, "primaryNodeIp": "127.0.3.5", "replicaNodeIps": ["127.0.3.6"],
     "hashRangeStart": "aaaaaaab", "hashRangeEnd": "ffffffff"}
  ]}`

// edit returns threeJSON with old replaced by new once.
func edit(t *testing.T, old, new string) []byte {
	t.Helper()
	if !strings.Contains(threeJSON, old) {
		t.Fatalf("threeJSON lacks %q", old)
	}
	return []byte(strings.Replace(threeJSON, old, new, 1))
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		words string
	}{
		{"top-level array", []byte(`[1,2]`), "wrong JSON type: the payload is a JSON array"},
		{"null", []byte(`null`), "missing clusterEpoch"},
		{"empty", []byte(``), "not JSON"},
		{"trailing garbage", []byte(threeJSON + "x"), "not JSON"},
		{"missing count", []byte(`{"clusterEpoch": 1, "partitions": []}`), "missing partitionCount"},
		{"epoch float", edit(t, `10294`, `1.5`), "wrong JSON type"},
		{"epoch huge", edit(t, `10294`, `1e40`), "wrong JSON type"},
		{"index string", edit(t, `"partitionIndex": 1`, `"partitionIndex": "1"`), "partitions[1].partitionIndex: wrong JSON type"},
		{"replicas not list", edit(t, `["127.0.2.6"]`, `"127.0.2.6"`), "partitions[1].replicaNodeIps: wrong JSON type"},
		{"partition not object", edit(t, `{"partitionIndex": 2`, `7, {"partitionIndex": 2`), "partitions[2]: wrong JSON type"},
		{"partitions not list", []byte(`{"clusterEpoch": 1, "partitionCount": 1, "partitions": "x"}`), "partitions: wrong JSON type"},
		{"missing index", edit(t, `"partitionIndex": 1,`, ``), "missing partitionIndex"},
		{"missing primary", edit(t, `"primaryNodeIp": "127.0.2.5",`, ``), "missing primary"},
		{"missing start", edit(t, `"hashRangeStart": "55555556",`, ``), "missing partitions[1].hashRangeStart"},
		{"hex with 0x", edit(t, `"55555556"`, `"0x555556"`), "not 8 hex digits"},
		{"hex too long", edit(t, `"55555556"`, `"055555556"`), "not 8 hex digits"},
		{"index out of range", edit(t, `"partitionIndex": 2`, `"partitionIndex": 3`), "partitionIndex 3 out of range 0-2"},
		{"negative index", edit(t, `"partitionIndex": 2`, `"partitionIndex": -1`), "out of range"},
		{"hostname", edit(t, `"127.0.2.5"`, `"db.example"`), "not an IP address"},
		{"bad replica", edit(t, `"127.0.2.6"`, `"127.0.2"`), "replica \"127.0.2\" is not an IP address"},
		{"empty replica", edit(t, `"127.0.2.6"`, `""`), "empty replica"},
		{"port zero", edit(t, `"127.0.2.5"`, `"127.0.2.5:0"`), "port 0 out of range"},
		{"port word", edit(t, `"127.0.2.5"`, `"127.0.2.5:http"`), "not a number"},
		{"port empty", edit(t, `"127.0.2.5"`, `"127.0.2.5:"`), "empty port"},
		{"port huge", edit(t, `"127.0.2.5"`, `"127.0.2.5:123456789"`), "out of range"},
		{"v4 in brackets", edit(t, `"127.0.2.5"`, `"[127.0.2.5]:80"`), "brackets"},
		{"v6 unclosed", edit(t, `"127.0.2.5"`, `"[::1:80"`), "closing"},
		{"v6 primary as replica", edit(t, `"127.0.2.5", "replicaNodeIps": ["127.0.2.6"]`,
			`"[::1]:80", "replicaNodeIps": ["[0:0::1]:80"]`), "own replica"},
		{"duplicate replica spelled twice", edit(t, `["127.0.2.6"]`, `["::2", "0::2"]`), "duplicate replica"},
		{"duplicate replica v4-mapped", edit(t, `["127.0.2.6"]`, `["127.0.2.6", "::ffff:127.0.2.6"]`), "duplicate replica"},
		{"primary as v4-mapped replica", edit(t, `["127.0.2.6"]`, `["::ffff:127.0.2.5"]`), "own replica"},
		{"unspecified primary", edit(t, `"127.0.2.5"`, `"0.0.0.0"`), "not a node's address"},
		{"unspecified v6 replica", edit(t, `["127.0.2.6"]`, `["[::]:80"]`), "not a node's address"},
		{"multicast replica", edit(t, `["127.0.2.6"]`, `["224.0.0.1"]`), "not a node's address"},
		{"v4-mapped unspecified", edit(t, `"127.0.2.5"`, `"::ffff:0.0.0.0"`), "not a node's address"},
		{"v4-mapped unspecified with port", edit(t, `"127.0.2.5"`, `"[::ffff:0.0.0.0]:80"`), "not a node's address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := topology.Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want error", m)
			}
			if !errors.Is(err, topology.ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			if !strings.Contains(err.Error(), tt.words) {
				t.Errorf("error %q does not mention %q", err, tt.words)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	data := []byte(threeJSON[:len(threeJSON)-1] + `, "pad": "` + strings.Repeat("x", topology.DefaultMaxBytes) + `"}`)
	_, err := topology.Parse(data)
	if !errors.Is(err, topology.ErrTooLarge) || !errors.Is(err, topology.ErrInvalid) {
		t.Fatalf("Parse = %v; want ErrTooLarge and ErrInvalid", err)
	}
}

func TestParseIgnoresUnknownFields(t *testing.T) {
	if _, err := topology.Parse(edit(t, `"masterNodeId": "m",`, `"masterNodeId": "m", "extra": {"a": [1]},`)); err != nil {
		t.Fatal(err)
	}
}

func TestValidateHandBuilt(t *testing.T) {
	m := &topology.Map{Epoch: 3, PartitionCount: 2, Partitions: []topology.Partition{
		{Index: 1, Primary: "127.0.0.2", HashStart: 0x80000000, HashEnd: 0xffffffff},
		{Index: 0, Primary: "127.0.0.1", Replicas: []string{"127.0.0.3"}, HashStart: 0, HashEnd: 0x7fffffff},
	}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Partitions[0].Index != 0 {
		t.Errorf("Validate did not sort: %+v", m.Partitions)
	}
	m.Partitions[1].HashStart = 0x80000001
	err := m.Validate()
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || ve.Partition != 1 || !strings.Contains(ve.Problem, "gap: hashes 80000000-80000000") {
		t.Fatalf("Validate = %v; want a gap at partition 1", err)
	}
	if err := (*topology.Map)(nil).Validate(); !errors.Is(err, topology.ErrInvalid) {
		t.Errorf("nil Validate = %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	m, err := topology.Parse([]byte(threeJSON))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"hashRangeStart":"aaaaaaab"`) {
		t.Errorf("Marshal lost the hex range: %s", data)
	}
	m2, err := topology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Errorf("round trip changed the map:\n%+v\n%+v", m, m2)
	}
	var m3 topology.Map
	if err := json.Unmarshal(data, &m3); err != nil || !reflect.DeepEqual(m, &m3) {
		t.Errorf("json.Unmarshal = %+v, %v", m3, err)
	}
	var p topology.Partition
	err = json.Unmarshal([]byte(`{"partitionIndex":0,"primaryNodeIp":"127.0.0.1","hashRangeStart":"zz","hashRangeEnd":"ffffffff"}`), &p)
	if !errors.Is(err, topology.ErrInvalid) || !strings.Contains(err.Error(), "hex") {
		t.Errorf("Partition.UnmarshalJSON = %v; want a hex error", err)
	}
}

func TestSplitNode(t *testing.T) {
	tests := []struct {
		node string
		port int
		want string
	}{
		{"127.0.1.5", 8080, "127.0.1.5:8080"},
		{"127.0.1.5:9000", 8080, "127.0.1.5:9000"},
		{"::1", 8080, "[::1]:8080"},
		{"[::1]", 8080, "[::1]:8080"},
		{"[::1]:19090", 8080, "[::1]:19090"},
		{"fe80::1%eth0", 80, "[fe80::1%eth0]:80"},
		{"not-an-ip", 80, "not-an-ip"},
		{"127.0.0.1", 0, "127.0.0.1"},
		{"", 80, ""},
	}
	for _, tt := range tests {
		if got := topology.SplitNode(tt.node, tt.port); got != tt.want {
			t.Errorf("SplitNode(%q, %d) = %q, want %q", tt.node, tt.port, got, tt.want)
		}
	}
}
