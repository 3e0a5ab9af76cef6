package clustertest_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/topology"
)

// An error rate of 1/k fails every k-th request after the call with a 503,
// so a test knows in advance which requests fail.
func ExampleNode_SetErrorRate() {
	m := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Primary: "127.0.5.11", HashStart: 0, HashEnd: 0xffffffff},
	}}
	c, err := clustertest.Start(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	node := c.Node("127.0.5.11")

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func() {
		resp, err := client.Get(node.URL() + "/orders")
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Print(resp.StatusCode, " ")
	}

	node.SetErrorRate(0.25) // the 4th, 8th, ... request fails
	for range 8 {
		get()
	}
	fmt.Println("| requests:", node.Requests())

	node.SetErrorRate(0) // no more faults
	get()
	fmt.Println("| requests:", node.Requests())
	// Output:
	// 200 200 200 503 200 200 200 503 | requests: 8
	// 200 | requests: 9
}
