package httpmw_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// fastRetry is a retry policy with near-zero waits.
func fastRetry(attempts int) *retry.Policy {
	return &retry.Policy{MaxAttempts: attempts, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond, Jitter: -1}
}

// trackedBody is a response body that records whether it was closed and how
// much of it was read.
type trackedBody struct {
	r      io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *trackedBody) Close() error               { b.closed.Store(true); return nil }

// script is a stub transport that answers with a scripted sequence of
// status codes (0 means a connection error) and records every request.
type script struct {
	mu     sync.Mutex
	codes  []int
	header http.Header // added to every response
	reqs   []*http.Request
	bodies []string
	resps  []*trackedBody
}

var errConn = &connError{}

type connError struct{}

func (*connError) Error() string { return "stub: connection refused" }

func (s *script) RoundTrip(r *http.Request) (*http.Response, error) {
	var body string
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		body = string(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	s.bodies = append(s.bodies, body)
	code := 200
	if len(s.codes) > 0 {
		code = s.codes[0]
		if len(s.codes) > 1 {
			s.codes = s.codes[1:]
		}
	}
	if code == 0 {
		return nil, errConn
	}
	tb := &trackedBody{r: strings.NewReader("payload")}
	s.resps = append(s.resps, tb)
	h := http.Header{}
	for k, v := range s.header {
		h[k] = v
	}
	return &http.Response{StatusCode: code, Header: h, Body: tb, Request: r}, nil
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// oneNodeMap is a map of one partition with a primary and two replicas.
func testMap(tb testing.TB) *topology.Map {
	tb.Helper()
	m, err := topology.Parse([]byte(`{"clusterEpoch":1,"masterNodeId":"m","partitionCount":2,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"127.0.1.5","replicaNodeIps":["127.0.1.6","127.0.1.7"],"hashRangeStart":"00000000","hashRangeEnd":"7fffffff"},
	 {"partitionIndex":1,"primaryNodeIp":"127.0.2.5","replicaNodeIps":["127.0.2.6"],"hashRangeStart":"80000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// keyFor returns a partition key that hashes into partition idx of m.
func keyFor(tb testing.TB, m *topology.Map, idx int) string {
	tb.Helper()
	for i := 0; i < 10000; i++ {
		k := "key-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if p := m.Lookup(k); p != nil && p.Index == idx {
			return k
		}
	}
	tb.Fatalf("no key for partition %d", idx)
	return ""
}
