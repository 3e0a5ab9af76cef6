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
	"testing"

	"github.com/rampart-go/rampart/httpmw"
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
