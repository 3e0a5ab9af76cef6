package clustertest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/topology"
)

// A program (or the drill) starts a cluster with Start, calls its nodes,
// crashes the primary and waits for the master to promote the replica.
func ExampleStart() {
	m := &topology.Map{Epoch: 7, PartitionCount: 1, Partitions: []topology.Partition{
		{Primary: "127.0.5.1", Replicas: []string{"127.0.5.2"}, HashStart: 0, HashEnd: 0xffffffff},
	}}
	c, err := clustertest.Start(m, clustertest.WithHeartbeat(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(c.Node("127.0.5.1").URL() + "/hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	c.Node("127.0.5.1").Crash()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	after, err := c.WaitMap(ctx, func(m *topology.Map) bool { return m.Partitions[0].Primary == "127.0.5.2" })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epoch", after.Epoch, "primary", after.Partitions[0].Primary, "replicas", after.Partitions[0].Replicas)
	// Output:
	// node=127.0.5.1 path=/hello
	// epoch 8 primary 127.0.5.2 replicas []
}
