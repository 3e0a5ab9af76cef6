package httpmw_test

import (
	"context"
	"crypto/x509"
	"errors"
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
