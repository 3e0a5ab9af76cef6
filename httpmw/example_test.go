package httpmw_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// The preset retries a brief 503 and routes the logical host "orders" to
// the node of the request's partition.
func ExampleNew() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello from %s for %s", r.Host, r.URL.Path)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	m, _ := topology.Parse([]byte(`{"clusterEpoch":1,"masterNodeId":"m","partitionCount":1,"partitions":[
		{"partitionIndex":0,"primaryNodeIp":"` + host + `","replicaNodeIps":[],"hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.New(tr,
		httpmw.WithRetry(&retry.Policy{BaseDelay: time.Millisecond}),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: p}),
	)}

	ctx := httpmw.WithPartitionKey(context.Background(), "customer-42")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://orders/items", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", calls.Load(), "attempts")
	// Output: 200 hello from orders for /items after 2 attempts
}

// Chain composes any middlewares, the first outermost.
func ExampleChain() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rt := httpmw.Chain(tr,
		httpmw.RetryMiddleware(httpmw.WithRetry(&retry.Policy{MaxAttempts: 2})),
		httpmw.BreakerMiddleware(),
	)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode) // a 4xx is an answer: not retried
	// Output: 418
}
