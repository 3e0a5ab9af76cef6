package topology_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/rampart-go/rampart/topology"
)

const exampleMap = `{
  "clusterEpoch": 10294, "masterNodeId": "node_master_001.local", "partitionCount": 2,
  "partitions": [
    {"partitionIndex": 1, "primaryNodeIp": "127.0.2.5", "replicaNodeIps": ["127.0.2.6"],
     "hashRangeStart": "80000000", "hashRangeEnd": "ffffffff"},
    {"partitionIndex": 0, "primaryNodeIp": "127.0.1.5:9000", "replicaNodeIps": ["127.0.1.6", "::1"],
     "hashRangeStart": "00000000", "hashRangeEnd": "7fffffff"}
  ]}`

func ExampleParse() {
	m, err := topology.Parse([]byte(exampleMap))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epoch", m.Epoch)
	for _, p := range m.Partitions {
		fmt.Printf("partition %d: %08x-%08x primary %s replicas %v\n", p.Index, p.HashStart, p.HashEnd, p.Primary, p.Replicas)
	}

	_, err = topology.Parse([]byte(`{"clusterEpoch": 1, "partitionCount": 1, "partitions": [
	  {"partitionIndex": 0, "primaryNodeIp": "127.0.0.1", "hashRangeStart": "00000000", "hashRangeEnd": "fffffffe"}]}`))
	fmt.Println(err)
	// Output:
	// epoch 10294
	// partition 0: 00000000-7fffffff primary 127.0.1.5:9000 replicas [127.0.1.6 ::1]
	// partition 1: 80000000-ffffffff primary 127.0.2.5 replicas [127.0.2.6]
	// topology: invalid map: hashRangeEnd (partition 0): not covering 00000000-ffffffff: the last range ends at fffffffe, not ffffffff
}

func ExampleMap_Candidates() {
	m, _ := topology.Parse([]byte(exampleMap))
	p := m.Lookup("user-42")                        // FNV-1a 026073ab: partition 0
	open := map[string]bool{"127.0.1.5:9000": true} // say its breaker is open
	healthy := func(node string) bool { return !open[node] }

	buf := make([]string, 0, 4) // reuse across calls: no allocation
	fmt.Println("read: ", m.Candidates(buf[:0], p, false, false, nil))
	fmt.Println("read, primary down: ", m.Candidates(buf[:0], p, false, false, healthy))
	fmt.Println("write: ", m.Candidates(buf[:0], p, true, false, nil))
	fmt.Println("write, primary down: ", m.Candidates(buf[:0], p, true, false, healthy))
	fmt.Println("write to replicas allowed: ", m.Candidates(buf[:0], p, true, true, healthy))
	for _, node := range m.Candidates(buf[:0], p, false, false, nil) {
		fmt.Println("dial", topology.SplitNode(node, 8080))
	}
	// Output:
	// read:  [127.0.1.5:9000 127.0.1.6 ::1]
	// read, primary down:  [127.0.1.6 ::1]
	// write:  [127.0.1.5:9000]
	// write, primary down:  []
	// write to replicas allowed:  [127.0.1.6 ::1]
	// dial 127.0.1.5:9000
	// dial 127.0.1.6:8080
	// dial [::1]:8080
}

func ExampleWatcher() {
	// A discovery master on loopback.
	master := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"10294"`)
		fmt.Fprint(w, exampleMap)
	}))
	defer master.Close()

	w := topology.NewWatcher(
		topology.HTTP(master.URL+"/v1/cluster/topology", topology.WithHTTPClient(master.Client())),
		topology.OnReject(func(err error) { fmt.Println("rejected:", err) }),
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	m, err := w.Wait(ctx)
	if err != nil {
		fmt.Println(err)
	} else {
		fmt.Println("epoch", m.Epoch, "partitions", len(m.Partitions))
		fmt.Println("key user-42 goes to partition", w.Current().Lookup("user-42").Index)
	}

	cancel()
	fmt.Println("Run:", <-done)
	// Output:
	// epoch 10294 partitions 2
	// key user-42 goes to partition 0
	// Run: context canceled
}

func ExampleSplitNode() {
	fmt.Println(topology.SplitNode("127.0.1.5", 7000))
	fmt.Println(topology.SplitNode("127.0.1.5:9000", 7000))
	fmt.Println(topology.SplitNode("::1", 7000))
	fmt.Println(topology.SplitNode("[::1]:19090", 7000))
	// Output:
	// 127.0.1.5:7000
	// 127.0.1.5:9000
	// [::1]:7000
	// [::1]:19090
}
