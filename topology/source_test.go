package topology_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rampart-go/rampart/topology"
)

// waitMap waits up to 10s for w's first map and returns its epoch.
func waitMap(t *testing.T, w *topology.Watcher) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := w.Wait(ctx)
	if err != nil {
		t.Fatalf("no map: %v", err)
	}
	return m.Epoch
}

// TestHTTPSourceShared: a second watcher on the same HTTP source gets the
// map although the server answers its If-None-Match with 304.
func TestHTTPSourceShared(t *testing.T) {
	srv := newSequenceServer(t, mapJSON(t, 5))
	src := topology.HTTP(srv.URL+"/v1/cluster/topology", topology.WithHTTPClient(srv.Client()))
	a := topology.NewWatcher(src, topology.WithInterval(time.Hour))
	runWatcher(t, a)
	if e := waitMap(t, a); e != 5 {
		t.Fatalf("first watcher: epoch %d, want 5", e)
	}
	b := topology.NewWatcher(src, topology.WithInterval(time.Hour))
	runWatcher(t, b)
	if e := waitMap(t, b); e != 5 {
		t.Fatalf("second watcher: epoch %d, want 5", e)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.ifNoneMatch) != 2 || srv.ifNoneMatch[1] != `"v0"` {
		t.Errorf("If-None-Match sent: %q, want the second fetch to be conditional", srv.ifNoneMatch)
	}
}

// TestHTTPSourceClosesIdleConnections: when Run returns, the default
// client's idle connection to the master is closed, not left for the
// transport's 90s idle timeout.
func TestHTTPSourceClosesIdleConnections(t *testing.T) {
	payload := mapJSON(t, 5)
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(payload)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	w := topology.NewWatcher(topology.HTTP(srv.URL), topology.WithInterval(time.Hour))
	stop := runWatcher(t, w)
	if e := waitMap(t, w); e != 5 {
		t.Fatalf("epoch %d, want 5", e)
	}
	select {
	case <-closed:
		t.Fatal("connection closed while the watcher runs")
	default:
	}
	stop()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection is still open 10s after Run returned")
	}
}

// TestHTTPSourceReplacedDefaultTransport: a program that replaced
// http.DefaultTransport with another RoundTripper still gets a working
// source (it used to panic on the type assertion).
func TestHTTPSourceReplacedDefaultTransport(t *testing.T) {
	srv := newSequenceServer(t, mapJSON(t, 5))
	orig := http.DefaultTransport
	http.DefaultTransport = roundTripperFunc(func(r *http.Request) (*http.Response, error) { return orig.RoundTrip(r) })
	t.Cleanup(func() { http.DefaultTransport = orig })

	src := topology.HTTP(srv.URL + "/v1/cluster/topology")
	m, err := src.Fetch(t.Context())
	if err != nil || m == nil || m.Epoch != 5 {
		t.Fatalf("Fetch = %v, %v; want epoch 5", m, err)
	}
	w := topology.NewWatcher(src, topology.WithInterval(time.Hour))
	runWatcher(t, w) // its Run closes the source's idle connection when it returns
	waitMap(t, w)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
