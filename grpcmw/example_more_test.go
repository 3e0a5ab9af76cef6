package grpcmw_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/clustertest"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// Each call goes to the primary of the partition that owns its key's hash
// (FNV-1a by default): user-42 hashes into partition 0, user-10 into
// partition 1 and customer-42 into partition 2.
func ExamplePartitionKey() {
	data, _ := os.ReadFile("../clustertest/testdata/three-partitions.json")
	m, _ := topology.Parse(data)
	cluster, err := clustertest.Start(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()

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

	conn, err := grpc.NewClient("topology:///echo", append(
		grpcmw.DialOptions(grpcmw.WithWatcher(w), grpcmw.WithPort(cluster.GRPCPort())),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	echo := pb.NewEchoClient(conn)

	for _, key := range []string{"user-42", "user-10", "customer-42"} {
		reply, err := echo.Echo(ctx, &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(key, "served by", reply.GetNode())
	}
	// Output:
	// user-42 served by 127.0.1.5
	// user-10 served by 127.0.2.5
	// customer-42 served by 127.0.3.5
}

// The retry interceptor on its own, chained by hand: an Unavailable call is
// tried again. gRPC's own retries are turned off so attempts do not multiply.
func ExampleUnaryRetry() {
	m := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Primary: "127.0.6.7", HashStart: 0, HashEnd: 0xffffffff},
	}}
	cluster, err := clustertest.Start(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()
	node := cluster.Node("127.0.6.7")
	node.SetErrorRate(0.5) // the 2nd, 4th, ... call fails with Unavailable

	policy := &retry.Policy{
		MaxAttempts: 3,
		BaseDelay:   time.Millisecond,
		Jitter:      -1, // no jitter, so the output is stable
		OnRetry: func(e retry.Event) {
			fmt.Printf("attempt %d failed with %v; retrying in %v\n", e.Attempt, status.Code(e.Err), e.Delay)
		},
	}
	conn, err := grpc.NewClient(node.GRPCAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
		grpc.WithChainUnaryInterceptor(grpcmw.UnaryRetry(policy)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	echo := pb.NewEchoClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		reply, err := echo.Echo(ctx, &pb.EchoRequest{Key: "user-42"})
		fmt.Println("served by", reply.GetNode(), err, "| node calls:", node.Requests())
	}
	// Output:
	// served by 127.0.6.7 <nil> | node calls: 1
	// attempt 1 failed with Unavailable; retrying in 1ms
	// served by 127.0.6.7 <nil> | node calls: 3
}
