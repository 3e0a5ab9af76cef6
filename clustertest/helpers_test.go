package clustertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast are the heartbeat timings of the tests: short, with room for a
// loaded machine before a live node is taken for dead.
var fast = clustertest.WithHeartbeat(25*time.Millisecond, 250*time.Millisecond)

type wireMap struct {
	Epoch          int64  `json:"clusterEpoch"`
	MasterNodeID   string `json:"masterNodeId"`
	PartitionCount int    `json:"partitionCount"`
	Partitions     []struct {
		Index     int      `json:"partitionIndex"`
		Primary   string   `json:"primaryNodeIp"`
		Replicas  []string `json:"replicaNodeIps"`
		HashStart string   `json:"hashRangeStart"`
		HashEnd   string   `json:"hashRangeEnd"`
	} `json:"partitions"`
}

// decodeMap decodes the wire JSON of a topology map, strictly enough for
// these tests (topology.Parse does the real validation).
func decodeMap(data []byte) (*topology.Map, error) {
	var w wireMap
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	m := &topology.Map{Epoch: w.Epoch, MasterNodeID: w.MasterNodeID, PartitionCount: w.PartitionCount}
	for _, p := range w.Partitions {
		if len(p.HashStart) != 8 || len(p.HashEnd) != 8 {
			return nil, fmt.Errorf("hash range %q-%q: want 8 hex digits", p.HashStart, p.HashEnd)
		}
		start, err := strconv.ParseUint(p.HashStart, 16, 32)
		if err != nil {
			return nil, err
		}
		end, err := strconv.ParseUint(p.HashEnd, 16, 32)
		if err != nil {
			return nil, err
		}
		m.Partitions = append(m.Partitions, topology.Partition{
			Index: p.Index, Primary: p.Primary, Replicas: p.Replicas,
			HashStart: uint32(start), HashEnd: uint32(end),
		})
	}
	return m, nil
}

func threePartitions(tb testing.TB) *topology.Map {
	tb.Helper()
	data, err := os.ReadFile("testdata/three-partitions.json")
	if err != nil {
		tb.Fatal(err)
	}
	m, err := decodeMap(data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func httpClient(tb testing.TB) *http.Client {
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func grpcConn(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds, failing the test after a bounded time.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for range 4000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("timed out waiting for %s", what)
}

// get sends a GET and returns the status, the body and the response.
func get(tb testing.TB, c *http.Client, url string, hdr http.Header) (int, string, http.Header) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// fetchTopology GETs the topology URL and decodes the map.
func fetchTopology(tb testing.TB, c *http.Client, url string) (*topology.Map, string) {
	tb.Helper()
	status, body, h := get(tb, c, url, nil)
	if status != http.StatusOK {
		tb.Fatalf("GET topology: status %d", status)
	}
	m, err := decodeMap([]byte(body))
	if err != nil {
		tb.Fatalf("decode topology: %v\n%s", err, body)
	}
	return m, h.Get("ETag")
}
