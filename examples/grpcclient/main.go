// Command grpcclient shows rampart's gRPC preset: grpc.NewClient with a
// "topology:///" target and grpcmw.DialOptions routes each call by partition
// key over the cluster topology, with retries, per-node breakers and
// bulkheads. It makes a unary call and a server-streaming call, then browns
// out the primary of partition 0 (every second request fails with
// Unavailable) and prints what the caller saw: no errors, because each failed
// attempt was retried on the replica.
//
// Run it with:
//
//	go run ./examples/grpcclient
//
// It exits with status 1 if a call failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "grpcclient:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	// Two partitions, each with a primary and a replica, on 127.0.12.x.
	m := &topology.Map{Epoch: 1, PartitionCount: 2, Partitions: []topology.Partition{
		{Index: 0, Primary: "127.0.12.1", Replicas: []string{"127.0.12.2"}, HashStart: 0x00000000, HashEnd: 0x7fffffff},
		{Index: 1, Primary: "127.0.12.3", Replicas: []string{"127.0.12.4"}, HashStart: 0x80000000, HashEnd: 0xffffffff},
	}}
	// Nodes report to the master every 50ms; one silent for 1s is dead.
	cluster, err := clustertest.Start(m, clustertest.WithHeartbeat(50*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	// Last, once everything that used it is closed: Close reports requests
	// still in flight, which would mean a leak.
	defer func() { err = errors.Join(err, cluster.Close()) }()

	// Follow the master's topology map.
	watcher := topology.NewWatcher(topology.HTTP(cluster.TopologyURL()), topology.WithInterval(50*time.Millisecond))
	ctx, stopWatcher := context.WithCancel(context.Background())
	watcherDone := make(chan struct{})
	go func() { defer close(watcherDone); _ = watcher.Run(ctx) }()
	defer func() { stopWatcher(); <-watcherDone }()
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := watcher.Wait(waitCtx); err != nil {
		return err
	}

	// The preset: resolver, balancer and the whole interceptor chain. A short
	// backoff keeps the demonstration quick.
	conn, err := grpc.NewClient("topology:///echo", append(
		grpcmw.DialOptions(
			grpcmw.WithWatcher(watcher),
			grpcmw.WithPort(cluster.GRPCPort()),
			grpcmw.WithRetry(&retry.Policy{BaseDelay: 5 * time.Millisecond}),
		),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	echo := discoverypb.NewEchoClient(conn)

	// A key of partition 0: its hash is at most 0x7fffffff.
	key, err := keyOfPartition(watcher.Current(), 0)
	if err != nil {
		return err
	}

	// A unary read and a server-streaming read, routed by key.
	node, err := unary(echo, key)
	if err != nil {
		return fmt.Errorf("unary call: %w", err)
	}
	fmt.Printf("unary Echo served by %s\n", node)
	nodes, err := stream(echo, key, 3)
	if err != nil {
		return fmt.Errorf("stream call: %w", err)
	}
	fmt.Printf("Stream got %d replies from %s\n", len(nodes), nodes[0])

	// Brownout: the primary of partition 0 fails every second request.
	primary := cluster.Node(m.Partitions[0].Primary)
	replica := cluster.Node(m.Partitions[0].Replicas[0])
	primary.SetErrorRate(0.5)
	primary.ResetCounters()
	replica.ResetCounters()
	fmt.Printf("brownout: %s fails every second request with Unavailable\n", primary.IP())

	const calls = 20
	unaryOK, streamOK := 0, 0
	for range calls {
		if _, err := unary(echo, key); err == nil {
			unaryOK++
		} else {
			fmt.Println("unary call failed:", err)
		}
		if _, err := stream(echo, key, 3); err == nil {
			streamOK++
		} else {
			fmt.Println("stream call failed:", err)
		}
	}
	fmt.Printf("during the brownout: unary %d/%d succeeded, streams %d/%d succeeded\n", unaryOK, calls, streamOK, calls)
	failed := primary.Requests() / 2 // the node fails exactly every second request
	fmt.Printf("primary took %d calls and failed %d; replica served %d retries\n",
		primary.Requests(), failed, replica.Requests())

	unharmed := unaryOK == calls && streamOK == calls && replica.Requests() == failed
	fmt.Printf("caller saw no errors: %t\n", unharmed)
	if !unharmed {
		return errors.New("the brownout reached the caller")
	}
	return nil
}

// unary makes one Echo read for key and returns the node that served it.
func unary(echo discoverypb.EchoClient, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	reply, err := echo.Echo(ctx, &discoverypb.EchoRequest{Key: key, Payload: []byte("hello")},
		grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil {
		return "", err
	}
	return reply.GetNode(), nil
}

// stream reads count replies of a server stream for key and returns the node
// of each.
func stream(echo discoverypb.EchoClient, key string, count int32) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := echo.Stream(ctx, &discoverypb.StreamRequest{Key: key, Count: count},
		grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil {
		return nil, err
	}
	var nodes []string
	for {
		reply, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nodes, nil
		}
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, reply.GetNode())
	}
}

// keyOfPartition returns a partition key that the map routes to partition i.
func keyOfPartition(m *topology.Map, i int) (string, error) {
	for n := range 1000 {
		key := fmt.Sprintf("customer-%d", n)
		if m.Lookup(key).Index == i {
			return key, nil
		}
	}
	return "", fmt.Errorf("no key of partition %d", i)
}
