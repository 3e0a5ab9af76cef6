package httpmw_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/topology"
)

// An https logical host keeps verifying the logical name, not the node IP
// the request is sent to, when the transport is a ServiceTransport.
func TestTLSVerifiesLogicalName(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Host))
	}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	m := singleNodeMap(t, host)
	base := srv.Client().Transport.(*http.Transport).Clone() // trusts the test CA
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return loopbackDial(ctx, &net.Dialer{}, network, addr)
	}
	t.Cleanup(base.CloseIdleConnections)

	do := func(rt http.RoundTripper, logical string) error {
		ctx := httpmw.WithPartitionKey(context.Background(), "k")
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+logical+"/x", nil)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	// With a ServiceTransport given, and with a plain *http.Transport, which
	// New puts in a ServiceTransport itself: the node IP, which this
	// certificate lists, is not what is verified.
	for _, tc := range []struct {
		logical string
		own     bool // the test gives New a ServiceTransport
		ok      bool
	}{
		{"example.com", true, true}, // the certificate's name
		{"orders", true, false},     // not in the certificate, although its IP is
		{"example.com", false, true},
		{"orders", false, false},
		{"example.com:" + portS, false, true}, // a logical host with its port
	} {
		next := http.RoundTripper(base)
		if tc.own {
			next = httpmw.ServiceTransport(base, tc.logical)
		}
		rt := httpmw.New(next, httpmw.WithRetry(fastRetry(1)),
			httpmw.WithService(httpmw.Service{Host: tc.logical, Topology: httpmw.FixedTopology(m), Port: port}))
		err := do(rt, tc.logical)
		var he x509.HostnameError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s (own ServiceTransport %v): %v", tc.logical, tc.own, err)
		case !tc.ok && !errors.As(err, &he):
			t.Errorf("%s (own ServiceTransport %v): err = %v, want a hostname verification error", tc.logical, tc.own, err)
		}
		rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	}
	// A Host header the caller set (virtual hosting) does not change the
	// name verified: the service's, not the node IP it would fall back to.
	rt := httpmw.New(base, httpmw.WithRetry(fastRetry(1)),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: port}))
	req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), "k"), "GET", "https://orders/x", nil)
	req.Host = "orders-v2.internal"
	resp, err := rt.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if he := (x509.HostnameError{}); !errors.As(err, &he) {
		t.Errorf("orders with Host orders-v2.internal: err = %v, want a hostname verification error (orders is not in the certificate)", err)
	}
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()

	// Names ignore case: a request for EXAMPLE.COM is routed by the
	// service configured as example.com, and verifies that name.
	rt = httpmw.New(base, httpmw.WithRetry(fastRetry(1)),
		httpmw.WithService(httpmw.Service{Host: "example.com", Topology: httpmw.FixedTopology(m), Port: port}))
	if err := do(rt, "EXAMPLE.COM"); err != nil {
		t.Errorf("EXAMPLE.COM for a service example.com: %v", err)
	}
	rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()

	// A ServiceTransport given the name without its port also serves the
	// logical host written with one.
	st := httpmw.ServiceTransport(base, "orders")
	t.Cleanup(st.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	rt = httpmw.New(st, httpmw.WithRetry(fastRetry(1)),
		httpmw.WithService(httpmw.Service{Host: "orders:" + portS, Topology: httpmw.FixedTopology(m), Port: port}))
	var he x509.HostnameError
	if err := do(rt, "orders:"+portS); !errors.As(err, &he) {
		t.Errorf("ServiceTransport(\"orders\") for orders:%s: err = %v, want a hostname verification error", portS, err)
	}
}

// Over HTTP/2, New's own ServiceTransport still verifies the logical name
// and still speaks HTTP/2.
func TestTLSVerifiesLogicalNameHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	base := srv.Client().Transport.(*http.Transport).Clone() // trusts the test CA, attempts HTTP/2
	rt := httpmw.New(base, httpmw.WithRetry(fastRetry(1)),
		httpmw.WithService(httpmw.Service{Host: "example.com", Topology: httpmw.FixedTopology(singleNodeMap(t, host)), Port: port}))
	defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), "k"), "GET", "https://example.com/x", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "HTTP/2.0" {
		t.Errorf("spoke %s (server saw %q), want HTTP/2", resp.Proto, b)
	}
}

// With two https services and a caller's own Host header, the name
// verified for a routed request stays the service's ("orders", which the
// certificate does not list) even when the service's map changed while the
// attempt waited in its node's bulkhead queue. The call used to find its
// service again by the identity of its route table, which the new map
// replaced: it found none, and the node IP was verified instead.
func TestTLSNameAfterMapChange(t *testing.T) {
	hold, entered := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	free := func() { once.Do(func() { close(hold) }) }
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host == "example.com" { // the holder
			entered <- struct{}{}
			<-hold
		}
	}))
	defer srv.Close()
	defer free()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	node := net.JoinHostPort(host, portS)
	base := srv.Client().Transport.(*http.Transport).Clone() // trusts the test CA (example.com, 127.0.0.1)
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return loopbackDial(ctx, &net.Dialer{}, network, addr)
	}

	orders := &swapTopology{}
	orders.m.Store(singleNodeMap(t, host))
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rt := httpmw.New(base, httpmw.WithRetry(fastRetry(1)), httpmw.WithBulkheads(hg),
		httpmw.WithService(httpmw.Service{Host: "example.com", Topology: httpmw.FixedTopology(singleNodeMap(t, host)), Port: port}),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: orders, Port: port}))
	defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	send := func(logical, hostHeader string) error {
		req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), "k"), "GET", "https://"+logical+"/x", nil)
		req.Host = hostHeader
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	waitQueued := func(n int) {
		for i := 0; hg.Get(node).Queued() != n; i++ {
			if i > 2000 {
				t.Fatalf("queue never reached %d", n)
			}
			time.Sleep(time.Millisecond)
		}
	}

	holder := make(chan error, 1)
	go func() { holder <- send("example.com", "") }()
	<-entered
	errB := make(chan error, 1)
	go func() { errB <- send("orders", "orders-v2.internal") }() // routed, then queued
	waitQueued(1)
	m2, err := topology.Parse([]byte(`{"clusterEpoch":2,"masterNodeId":"m","partitionCount":1,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"` + host + `","replicaNodeIps":[],"hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	orders.m.Store(m2) // the same node, a new epoch
	errC := make(chan error, 1)
	go func() { errC <- send("orders", "") }() // rebuilds orders' route table, then queues
	waitQueued(2)
	free()
	if err := <-holder; err != nil {
		t.Fatalf("holder: %v", err)
	}
	<-errC
	var he x509.HostnameError
	if err := <-errB; !errors.As(err, &he) {
		t.Fatalf("orders (Host orders-v2.internal) after a map change: err = %v, want a hostname verification error for orders", err)
	}
}

// With failover above the retry layer (a supported order), every attempt
// still verifies the logical name, also when the caller set a Host header
// of its own: the retry loop keeps the route the outer failover chose.
func TestTLSFailoverAboveRetryVerifiesLogicalName(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	m := singleNodeMap(t, host)
	base := srv.Client().Transport.(*http.Transport).Clone() // the certificate names 127.0.0.1 and example.com, not "orders"
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return loopbackDial(ctx, &net.Dialer{}, network, addr)
	}
	defer base.CloseIdleConnections()
	for _, above := range []bool{false, true} {
		st := httpmw.ServiceTransport(base, "orders")
		fo := httpmw.FailoverMiddleware(httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: port}))
		re := httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(2)))
		rt := httpmw.Chain(st, re, fo)
		if above {
			rt = httpmw.Chain(st, fo, re)
		}
		req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), "k"), "GET", "https://orders/x", nil)
		req.Host = "orders-v2.internal" // virtual hosting on the node
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		if he := (x509.HostnameError{}); !errors.As(err, &he) {
			t.Errorf("failover above retry %v: err = %v, want a hostname error for \"orders\" (the node's IP was verified instead)", above, err)
		}
		st.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	}
}
