package grpcmw_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/clustertest"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/topology"
)

// A client of a partitioned cluster: the preset routes each call by its
// partition key, and a read fails over to a replica when the primary is
// down.
func Example() {
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

	reply, err := echo.Echo(ctx, &pb.EchoRequest{Key: "user-42"}, grpcmw.PartitionKey("user-42"))
	fmt.Println("write served by", reply.GetNode(), err)

	cluster.Node(reply.GetNode()).Crash()
	reply, err = echo.Echo(ctx, &pb.EchoRequest{Key: "user-42"}, grpcmw.PartitionKey("user-42"), grpcmw.Read())
	fmt.Println("read served by", reply.GetNode(), err)
	// Output:
	// write served by 127.0.1.5 <nil>
	// read served by 127.0.1.6 <nil>
}
