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
	for _, tc := range []struct {
		logical string
		ok      bool
	}{
		{"example.com", true}, // the certificate's name
		{"orders", false},     // not in the certificate, although its IP is
	} {
		st := httpmw.ServiceTransport(base, tc.logical)
		t.Cleanup(st.(interface{ CloseIdleConnections() }).CloseIdleConnections)
		rt := httpmw.New(st, httpmw.WithRetry(fastRetry(1)),
			httpmw.WithService(httpmw.Service{Host: tc.logical, Topology: httpmw.FixedTopology(m), Port: port}))
		err := do(rt, tc.logical)
		var he x509.HostnameError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.logical, err)
		case !tc.ok && !errors.As(err, &he):
			t.Errorf("%s: err = %v, want a hostname verification error", tc.logical, err)
		}
	}
	// New puts a plain *http.Transport in a ServiceTransport itself: the
	// node IP, which this certificate lists, is not what is verified.
	for _, tc := range []struct {
		logical string
		ok      bool
	}{
		{"example.com", true},
		{"orders", false},
		{"example.com:" + portS, true}, // a logical host with its port
	} {
		rt := httpmw.New(base, httpmw.WithRetry(fastRetry(1)),
			httpmw.WithService(httpmw.Service{Host: tc.logical, Topology: httpmw.FixedTopology(m), Port: port}))
		err := do(rt, tc.logical)
		var he x509.HostnameError
		switch {
		case tc.ok && err != nil:
			t.Errorf("plain transport, %s: %v", tc.logical, err)
		case !tc.ok && !errors.As(err, &he):
			t.Errorf("plain transport, %s: err = %v, want a hostname verification error", tc.logical, err)
		}
		rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	}
	// A ServiceTransport given the name without its port also serves the
	// logical host written with one.
	st := httpmw.ServiceTransport(base, "orders")
	t.Cleanup(st.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	rt := httpmw.New(st, httpmw.WithRetry(fastRetry(1)),
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
