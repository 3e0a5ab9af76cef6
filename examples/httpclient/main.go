// Command httpclient shows the shortest way to a resilient HTTP client:
// one expression wraps a plain http.Client's transport in rampart's preset
// (retry, per-node breakers and bulkheads, failover over the cluster
// topology). It starts a three-partition cluster on loopback, reads from it,
// crashes the primary of partition 0 halfway through, and checks that every
// read still succeeded: the reads of partition 0 moved to its replica.
//
// Run it with:
//
//	go run ./examples/httpclient
//
// It exits with status 1 if any read failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/topology"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httpclient:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	// A cluster of three partitions on loopback, as the discovery master
	// would describe it. Every node listens on its own 127.0.11.x address.
	m := &topology.Map{Epoch: 1, PartitionCount: 3, Partitions: []topology.Partition{
		{Index: 0, Primary: "127.0.11.1", Replicas: []string{"127.0.11.2"}, HashStart: 0x00000000, HashEnd: 0x55555555},
		{Index: 1, Primary: "127.0.11.3", Replicas: []string{"127.0.11.4"}, HashStart: 0x55555556, HashEnd: 0xaaaaaaaa},
		{Index: 2, Primary: "127.0.11.5", Replicas: []string{"127.0.11.6"}, HashStart: 0xaaaaaaab, HashEnd: 0xffffffff},
	}}
	cluster, err := clustertest.Start(m, clustertest.WithHeartbeat(50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		return err
	}
	// Last, once everything that used it is closed: Close reports requests
	// still in flight, which would mean a leak.
	defer func() { err = errors.Join(err, cluster.Close()) }()

	// Follow the master's topology map, and wait for the first one.
	watcher := topology.NewWatcher(topology.HTTP(cluster.TopologyURL()), topology.WithInterval(50*time.Millisecond))
	ctx, stopWatcher := context.WithCancel(context.Background())
	watcherDone := make(chan struct{})
	go func() { defer close(watcherDone); _ = watcher.Run(ctx) }()
	defer func() { stopWatcher(); <-watcherDone }()
	first, err := waitMap(watcher)
	if err != nil {
		return err
	}
	fmt.Printf("topology: epoch %d, %d partitions\n", first.Epoch, len(first.Partitions))

	// A plain client, as most programs already have one.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: base, Timeout: 5 * time.Second}

	// The one expression: requests to http://orders/... are routed over the
	// topology by partition key, retried, and guarded per node.
	client.Transport = httpmw.New(client.Transport,
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: watcher, Port: cluster.HTTPPort()}))

	// 200 reads over 20 customers; the primary of partition 0 crashes after
	// the 100th.
	const reads = 200
	primary := first.Partitions[0].Primary
	ok, servedByReplica := 0, 0
	for i := range reads {
		if i == reads/2 {
			cluster.Node(primary).Crash()
			fmt.Printf("crashed %s, the primary of partition 0, after %d reads\n", primary, i)
		}
		customer := fmt.Sprintf("customer-%d", i%20)
		node, err := get(client, customer)
		if err != nil {
			fmt.Printf("read %d (%s) failed: %v\n", i+1, customer, err)
			continue
		}
		ok++
		if node == first.Partitions[0].Replicas[0] {
			servedByReplica++
		}
	}
	fmt.Printf("reads: %d/%d succeeded\n", ok, reads)
	fmt.Printf("reads of partition 0 served by its replica after the crash: %d\n", servedByReplica)

	// Meanwhile the master noticed the crash and promoted the replica; the
	// watcher follows it.
	promoted, err := waitFor(watcher, func(m *topology.Map) bool { return m.Partitions[0].Primary != primary })
	if err != nil {
		return fmt.Errorf("no promotion seen: %w", err)
	}
	fmt.Printf("topology: epoch %d, partition 0 primary is now %s\n", promoted.Epoch, promoted.Partitions[0].Primary)

	kept := ok == reads && servedByReplica > 0
	fmt.Printf("reads kept succeeding: %t\n", kept)
	if !kept {
		return errors.New("reads did not all succeed")
	}
	return nil
}

// get reads one customer's orders and returns the node that answered.
// The partition key picks the partition, and so the nodes.
func get(client *http.Client, customer string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ctx = httpmw.WithPartitionKey(ctx, customer)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://orders/orders/"+customer, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return resp.Header.Get(clustertest.HeaderNode), nil
}

// waitMap waits for the watcher's first map.
func waitMap(w *topology.Watcher) (*topology.Map, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.Wait(ctx)
}

// waitFor polls the watcher's map until ok holds, for at most 5 seconds.
func waitFor(w *topology.Watcher, ok func(*topology.Map) bool) (*topology.Map, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := w.Current(); m != nil && ok(m) {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
