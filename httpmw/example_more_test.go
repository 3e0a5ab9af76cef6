package httpmw_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// A client of a partitioned cluster: the logical host "orders" is routed by
// each request's partition key to the primary of the key's partition.
func ExampleNewClient() {
	data, _ := os.ReadFile("../clustertest/testdata/three-partitions.json")
	m, _ := topology.Parse(data)
	cluster, err := clustertest.Start(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()

	// Watch the cluster's discovery master for the topology map.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := topology.NewWatcher(topology.HTTP(cluster.TopologyURL()))
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = w.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	if _, err := w.Wait(ctx); err != nil {
		fmt.Println(err)
		return
	}

	client := httpmw.NewClient(httpmw.WithService(httpmw.Service{
		Host: "orders", Topology: w, Port: cluster.HTTPPort(),
	}))
	defer client.CloseIdleConnections()

	for _, key := range []string{"user-42", "user-10", "customer-42"} {
		req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(ctx, key), "GET", "http://orders/items", nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(key, "served by", resp.Header.Get(clustertest.HeaderNode), resp.StatusCode)
	}
	// Output:
	// user-42 served by 127.0.1.5 200
	// user-10 served by 127.0.2.5 200
	// customer-42 served by 127.0.3.5 200
}

// A POST is sent once unless it has an Idempotency-Key header or the caller
// vouches with WithWriteRetry that repeating it is safe. The node here fails
// every second request; the retried body arrives intact.
func ExampleWithWriteRetry() {
	m := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Primary: "127.0.6.5", HashStart: 0, HashEnd: 0xffffffff},
	}}
	cluster, err := clustertest.Start(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()
	node := cluster.Node("127.0.6.5")
	node.SetErrorRate(0.5) // the 2nd, 4th, ... request fails with 503

	client := httpmw.NewClient(httpmw.WithRetry(&retry.Policy{BaseDelay: time.Millisecond}))
	defer client.CloseIdleConnections()
	post := func(ctx context.Context, body string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", node.URL()+"/orders", strings.NewReader(body))
		req.Header.Set(clustertest.HeaderBodySHA256, clustertest.BodySHA256([]byte(body)))
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, "| node requests:", node.Requests())
	}

	ctx := context.Background()
	post(ctx, `{"item":1}`)                        // request 1 succeeds
	post(httpmw.WithWriteRetry(ctx), `{"item":2}`) // request 2 fails, request 3 is its retry
	post(ctx, `{"item":3}`)                        // request 4 fails: not retried
	fmt.Println("body mismatches:", node.BodyMismatches())
	// Output:
	// 200 | node requests: 1
	// 200 | node requests: 3
	// 503 | node requests: 4
	// body mismatches: 0
}
