package clustertest_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/topology"
)

var allIPs = []string{"127.0.1.5", "127.0.1.6", "127.0.1.7", "127.0.2.5", "127.0.2.6", "127.0.3.5", "127.0.3.6"}

func TestServesEveryNodeOverHTTPAndGRPC(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	hc := httpClient(t)
	ctx := testCtx(t)

	var got []string
	for _, n := range c.Nodes() {
		got = append(got, n.IP())
		if want := n.IP() + ":" + strconv.Itoa(c.HTTPPort()); n.HTTPAddr() != want {
			t.Errorf("HTTPAddr = %s, want %s", n.HTTPAddr(), want)
		}
		status, body, h := get(t, hc, n.URL()+"/x", nil)
		if status != http.StatusOK || body != "node="+n.IP()+" path=/x" || h.Get(clustertest.HeaderNode) != n.IP() {
			t.Errorf("GET %s/x = %d %q", n.URL(), status, body)
		}

		ec := discoverypb.NewEchoClient(grpcConn(t, n.GRPCAddr()))
		payload := []byte("hello")
		rep, err := ec.Echo(ctx, &discoverypb.EchoRequest{Payload: payload, Key: "k", Sha256: clustertest.BodySHA256(payload)})
		if err != nil || rep.GetNode() != n.IP() || rep.GetSize() != 5 {
			t.Errorf("Echo on %s = %v, %v", n.IP(), rep, err)
		}
		stream, err := ec.Stream(ctx, &discoverypb.StreamRequest{Key: "k", Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			r, err := stream.Recv()
			if err != nil || r.GetSeq() != int32(i) || r.GetNode() != n.IP() {
				t.Fatalf("Recv %d on %s = %v, %v", i, n.IP(), r, err)
			}
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Errorf("Recv after the last reply = %v, want io.EOF", err)
		}
		if n.Requests() != 3 || n.BodyMismatches() != 0 {
			t.Errorf("%s: Requests=%d BodyMismatches=%d, want 3 and 0", n.IP(), n.Requests(), n.BodyMismatches())
		}
	}
	if !slices.Equal(got, allIPs) {
		t.Errorf("Nodes = %v, want %v", got, allIPs)
	}
	if c.Node("127.0.9.9") != nil || c.Node("127.0.2.6:1") != c.Node("127.0.2.6") {
		t.Error("Node lookup is wrong")
	}
	waitUntil(t, "every node's heartbeat", func() bool {
		for _, n := range c.Nodes() {
			if n.Heartbeats() == 0 {
				return false
			}
		}
		return true
	})
}

func TestCrashedPrimaryIsReplacedAndRejoinsAsReplica(t *testing.T) {
	var mu sync.Mutex
	var changes []clustertest.Change
	c := clustertest.New(t, threePartitions(t), fast, clustertest.WithOnChange(func(ch clustertest.Change) {
		mu.Lock()
		changes = append(changes, ch)
		mu.Unlock()
	}))
	hc := httpClient(t)
	ctx := testCtx(t)

	before, _ := fetchTopology(t, hc, c.TopologyURL())
	if before.Epoch != 10294 || before.Partitions[0].Primary != "127.0.1.5" || before.MasterNodeID != "node_master_001.local" {
		t.Fatalf("initial map = %+v", before)
	}
	c.Node("127.0.1.5").Crash()
	if _, err := hc.Get(c.Node("127.0.1.5").URL() + "/"); err == nil {
		t.Error("GET on a crashed node succeeded")
	}
	if _, err := c.WaitMap(ctx, func(m *topology.Map) bool { return m.Partitions[0].Primary == "127.0.1.6" }); err != nil {
		t.Fatalf("no promotion: %v", err)
	}
	after, _ := fetchTopology(t, hc, c.TopologyURL())
	p0 := after.Partitions[0]
	if after.Epoch <= before.Epoch || p0.Primary != "127.0.1.6" || !slices.Equal(p0.Replicas, []string{"127.0.1.7"}) {
		t.Errorf("after crash: epoch %d (was %d), partition 0 = %+v", after.Epoch, before.Epoch, p0)
	}
	if c.Live("127.0.1.5") {
		t.Error("master still holds the crashed node alive")
	}

	if err := c.Node("127.0.1.5").Recover(); err != nil {
		t.Fatal(err)
	}
	rejoined := func(m *topology.Map) bool {
		return slices.Equal(m.Partitions[0].Replicas, []string{"127.0.1.7", "127.0.1.5"})
	}
	if _, err := c.WaitMap(ctx, rejoined); err != nil {
		t.Fatalf("no rejoin: %v", err)
	}
	final, _ := fetchTopology(t, hc, c.TopologyURL())
	if final.Epoch <= after.Epoch || final.Partitions[0].Primary != "127.0.1.6" || !rejoined(final) {
		t.Errorf("after recover: %+v", final)
	}
	if status, body, _ := get(t, hc, c.Node("127.0.1.5").URL()+"/back", nil); status != 200 || body != "node=127.0.1.5 path=/back" {
		t.Errorf("GET recovered node = %d %q", status, body)
	}

	mu.Lock()
	defer mu.Unlock()
	prev := before.Epoch
	var dead, back bool
	for _, ch := range changes {
		if ch.Epoch != prev+1 || ch.Map.Epoch != ch.Epoch {
			t.Errorf("change epoch %d after %d", ch.Epoch, prev)
		}
		prev = ch.Epoch
		dead = dead || slices.Contains(ch.Dead, "127.0.1.5")
		back = back || slices.Contains(ch.Rejoined, "127.0.1.5")
	}
	if !dead || !back {
		t.Errorf("changes %+v lack the death or the rejoin of 127.0.1.5", changes)
	}
	if c.Epoch() != prev {
		t.Errorf("Epoch() = %d, last change %d", c.Epoch(), prev)
	}
}

func TestAllNodesOfPartitionDeadKeepsPrimary(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	ctx := testCtx(t)
	c.Node("127.0.3.5").Crash()
	c.Node("127.0.3.6").Crash()
	m, err := c.WaitMap(ctx, func(m *topology.Map) bool {
		return !c.Live("127.0.3.5") && !c.Live("127.0.3.6") && len(m.Partitions[2].Replicas) == 0
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Partitions[2].Primary; p != "127.0.3.6" && p != "127.0.3.5" {
		t.Errorf("partition 2 primary = %q", p)
	}
	if err := c.Node("127.0.3.5").Recover(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitMap(ctx, func(m *topology.Map) bool { return m.Partitions[2].Primary == "127.0.3.5" }); err != nil {
		t.Fatal(err)
	}
}

func TestTopologyETag(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	hc := httpClient(t)
	ctx := testCtx(t)

	_, etag := fetchTopology(t, hc, c.TopologyURL())
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		status, body, h := get(t, hc, c.TopologyURL(), http.Header{"If-None-Match": {inm}})
		if status != http.StatusNotModified || body != "" || h.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q", inm, status, body)
		}
	}
	if status, _, _ := get(t, hc, c.TopologyURL(), http.Header{"If-None-Match": {`"stale"`}}); status != http.StatusOK {
		t.Errorf("stale If-None-Match: status %d", status)
	}
	e := c.Epoch()
	c.Node("127.0.2.6").Crash()
	if _, err := c.WaitEpoch(ctx, e+1); err != nil {
		t.Fatal(err)
	}
	status, _, h := get(t, hc, c.TopologyURL(), http.Header{"If-None-Match": {etag}})
	if status != http.StatusOK || h.Get("ETag") == etag {
		t.Errorf("after a change: status %d, ETag %s (was %s)", status, h.Get("ETag"), etag)
	}
	if status, _, _ := get(t, hc, strings.TrimSuffix(c.TopologyURL(), "topology")+"nope", nil); status != http.StatusNotFound {
		t.Errorf("unknown path: %d", status)
	}
	resp, err := hc.Post(c.TopologyURL(), "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST topology: %d", resp.StatusCode)
	}
}

func TestBodyChecksum(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	hc := httpClient(t)
	n := c.Node("127.0.2.5")
	body := []byte(strings.Repeat("payload ", 100))

	post := func(sum string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, n.URL()+"/w", bytes.NewReader(body))
		if sum != "" {
			req.Header.Set(clustertest.HeaderBodySHA256, sum)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, got := post(clustertest.BodySHA256(body)); status != 200 || got != "node=127.0.2.5 path=/w size=800" {
		t.Errorf("good checksum: %d %q", status, got)
	}
	if status, got := post(""); status != 200 || got != "node=127.0.2.5 path=/w size=800" {
		t.Errorf("no checksum: %d %q", status, got)
	}
	if n.BodyMismatches() != 0 {
		t.Fatalf("BodyMismatches = %d before any bad body", n.BodyMismatches())
	}
	if status, _ := post(clustertest.BodySHA256(body[1:])); status != http.StatusBadRequest {
		t.Errorf("bad checksum: status %d", status)
	}
	if n.BodyMismatches() != 1 {
		t.Errorf("BodyMismatches = %d, want 1", n.BodyMismatches())
	}

	ec := discoverypb.NewEchoClient(grpcConn(t, n.GRPCAddr()))
	_, err := ec.Echo(testCtx(t), &discoverypb.EchoRequest{Payload: body, Sha256: clustertest.BodySHA256(nil)})
	if status.Code(err) != codes.InvalidArgument || n.BodyMismatches() != 2 {
		t.Errorf("bad gRPC checksum: %v, BodyMismatches = %d", err, n.BodyMismatches())
	}
	if n.Requests() != 4 {
		t.Errorf("Requests = %d, want 4", n.Requests())
	}
}

func TestTraceparent(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	hc := httpClient(t)
	n := c.Node("127.0.3.6")
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		tp  string
		bad bool
	}{
		{good, false},
		{"", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", true},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", true},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", true},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", false},
	}
	var wantBad int64
	for _, tc := range cases {
		h := http.Header{}
		if tc.tp != "" {
			h.Set("traceparent", tc.tp)
		}
		get(t, hc, n.URL()+"/", h)
		if tc.bad {
			wantBad++
		}
		if n.BadTraceparents() != wantBad {
			t.Errorf("traceparent %q: BadTraceparents = %d, want %d", tc.tp, n.BadTraceparents(), wantBad)
		}
		if tc.tp != "" && n.LastTraceparent() != tc.tp {
			t.Errorf("LastTraceparent = %q, want %q", n.LastTraceparent(), tc.tp)
		}
	}
	n.ResetCounters()
	if n.BadTraceparents() != 0 || n.Requests() != 0 || n.LastTraceparent() != "" {
		t.Error("ResetCounters left counts")
	}
}

func TestInvalidTopology(t *testing.T) {
	cases := map[string]*topology.Map{
		"nil":           nil,
		"empty":         {},
		"no primary":    {Partitions: []topology.Partition{{Primary: ""}}},
		"not loopback":  {Partitions: []topology.Partition{{Primary: "10.0.0.1"}}},
		"not an ip":     {Partitions: []topology.Partition{{Primary: "node-a"}}},
		"listed twice":  {Partitions: []topology.Partition{{Primary: "127.0.1.5", Replicas: []string{"127.0.1.5:80"}}}},
		"bad replica":   {Partitions: []topology.Partition{{Primary: "127.0.1.5", Replicas: []string{"192.168.1.1"}}}},
		"not loopback6": {Partitions: []topology.Partition{{Primary: "2001:db8::1"}}},
	}
	for name, m := range cases {
		c, err := clustertest.Start(m)
		if !errors.Is(err, clustertest.ErrInvalidTopology) {
			t.Errorf("%s: err = %v, want ErrInvalidTopology", name, err)
		}
		if c != nil {
			_ = c.Close()
		}
	}
	_, err := clustertest.Start(threePartitions(t), clustertest.WithMasterIP("192.0.2.1"))
	if !errors.Is(err, clustertest.ErrInvalidTopology) {
		t.Errorf("non-loopback master: %v", err)
	}
}

func TestFixedPortsAndPortsInMap(t *testing.T) {
	// Take two free ports on one address, then release them for the cluster.
	var ports [2]int
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.4.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	m := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Primary: "127.0.4.1:9", Replicas: []string{"127.0.4.2"}, HashEnd: 0xffffffff},
	}}
	c := clustertest.New(t, m, fast, clustertest.WithPorts(ports[0], ports[1]), clustertest.WithPortsInMap(clustertest.ServiceGRPC))
	if c.HTTPPort() != ports[0] || c.GRPCPort() != ports[1] {
		t.Fatalf("ports %d/%d, want %v", c.HTTPPort(), c.GRPCPort(), ports)
	}
	g := strconv.Itoa(ports[1])
	got, _ := fetchTopology(t, httpClient(t), c.TopologyURL())
	p := got.Partitions[0]
	if p.Primary != "127.0.4.1:"+g || !slices.Equal(p.Replicas, []string{"127.0.4.2:" + g}) || p.HashEnd != 0xffffffff {
		t.Errorf("served partition = %+v", p)
	}
	if got.MasterNodeID != "clustertest-master" {
		t.Errorf("MasterNodeID = %q", got.MasterNodeID)
	}

	// The same fixed ports are now taken.
	_, err := clustertest.Start(m, clustertest.WithPorts(ports[0], 0))
	if !errors.Is(err, clustertest.ErrNoPorts) {
		t.Errorf("taken port: err = %v, want ErrNoPorts", err)
	}
}

func TestHeartbeatService(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	hb := discoverypb.NewClusterDiscoveryServiceClient(grpcConn(t, c.MasterGRPCAddr()))
	ctx := testCtx(t)

	resp, err := hb.ReportHeartbeat(ctx, &discoverypb.HeartbeatRequest{NodeId: "127.0.9.9", IpAddress: "127.0.9.9"})
	if err != nil || resp.GetRecommendedCommand() != discoverypb.HeartbeatResponse_TERMINATE {
		t.Errorf("unknown node: %v, %v", resp, err)
	}
	resp, err = hb.ReportHeartbeat(ctx, &discoverypb.HeartbeatRequest{NodeId: "127.0.1.7"})
	if err != nil || resp.GetRecommendedCommand() != discoverypb.HeartbeatResponse_CONTINUE || resp.GetSyncEpochTimestampMs() == 0 {
		t.Errorf("live node: %v, %v", resp, err)
	}

	// Once a crashed node is dead, a report in its name brings it back,
	// answered with REBALANCE.
	n := c.Node("127.0.2.6")
	n.Crash()
	if _, err := c.WaitMap(ctx, func(*topology.Map) bool { return !c.Live(n.IP()) }); err != nil {
		t.Fatal(err)
	}
	e := c.Epoch()
	resp, err = hb.ReportHeartbeat(ctx, &discoverypb.HeartbeatRequest{NodeId: n.IP()})
	if err != nil || resp.GetRecommendedCommand() != discoverypb.HeartbeatResponse_REBALANCE {
		t.Errorf("dead node: %v, %v", resp, err)
	}
	m, err := c.WaitEpoch(ctx, e+1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.Partitions[1].Replicas, "127.0.2.6") {
		t.Errorf("map after rejoin: %+v", m.Partitions[1])
	}
}

func TestServedMapParses(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	c.Node("127.0.1.5").Crash()
	if _, err := c.WaitMap(testCtx(t), func(m *topology.Map) bool { return m.Partitions[0].Primary == "127.0.1.6" }); err != nil {
		t.Fatal(err)
	}
	_, body, _ := get(t, httpClient(t), c.TopologyURL(), nil)
	parsed, err := topology.Parse([]byte(body))
	if err != nil {
		t.Fatalf("topology.Parse of the served map: %v\n%s", err, body)
	}
	mine, err := decodeMap([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Epoch != mine.Epoch || len(parsed.Partitions) != 3 {
		t.Fatalf("parsed %+v, decoded %+v", parsed, mine)
	}
	for i, p := range parsed.Partitions {
		q := mine.Partitions[i]
		if p.Primary != q.Primary || !slices.Equal(p.Replicas, q.Replicas) || p.HashStart != q.HashStart || p.HashEnd != q.HashEnd {
			t.Errorf("partition %d: Parse %+v, decoded %+v", i, p, q)
		}
	}
	if !strings.Contains(body, `"hashRangeStart": "55555556"`) || !strings.Contains(body, `"hashRangeEnd": "ffffffff"`) {
		t.Errorf("served body lacks 8-hex-digit ranges:\n%s", body)
	}
}

// TestIPv6NodeWithIPv4Master: a ::1 node in a map with IPv4 nodes (the
// master listens on IPv4) reports its heartbeats and stays in the map; it
// used to dial the master from ::1, fail, and be dropped as dead.
func TestIPv6NodeWithIPv4Master(t *testing.T) {
	m, err := topology.Parse([]byte(`{"clusterEpoch":1,"masterNodeId":"m","partitionCount":1,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"127.0.40.1","replicaNodeIps":["::1"],"hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.New(t, m, fast)
	for deadline := time.Now().Add(10 * time.Second); c.Node("::1").Heartbeats() < 5; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the ::1 node sent %d heartbeats in 10s", c.Node("::1").Heartbeats())
		}
	}
	if got := c.Map(); got.Epoch != 1 || len(got.Partitions[0].Replicas) != 1 || !c.Live("::1") {
		t.Errorf("map %+v, ::1 live %v: want epoch 1 with the ::1 replica", got, c.Live("::1"))
	}
}
