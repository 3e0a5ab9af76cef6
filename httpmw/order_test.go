package httpmw_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/httpmw"
)

// A breaker above the retry layer sees the retries' exhausted error, not
// each response: retries that ran out on 429s are neutral for it, as each
// 429 is for a breaker below the retry layer, and on 503s a failure.
func TestBreakerAboveRetry(t *testing.T) {
	for _, tc := range []struct {
		code     int
		failures uint32
	}{{http.StatusTooManyRequests, 0}, {http.StatusServiceUnavailable, 1}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.code)
		}))
		bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 5, Timeout: time.Hour}, 0)
		tr := srv.Client().Transport
		rt := httpmw.Chain(tr, httpmw.BreakerMiddleware(httpmw.WithBreakers(bg)), httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(2))))
		resp, err := rt.RoundTrip(mustGet(t, srv.URL))
		if err == nil {
			resp.Body.Close()
		}
		var se *httpmw.StatusError
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Errorf("%d: err = %v, want a StatusError", tc.code, err)
		}
		if c := bg.Get(srv.Listener.Addr().String()).Counts(); c.TotalFailures != tc.failures {
			t.Errorf("%d: breaker counted %d failures, want %d", tc.code, c.TotalFailures, tc.failures)
		}
		tr.(*http.Transport).CloseIdleConnections()
		srv.Close()
	}
}

// A request whose context is done before its first attempt is not sent,
// and its body is closed all the same, as the RoundTripper contract asks.
func TestRetryDoneContextClosesBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a request with a done context was sent")
	}))
	defer srv.Close()
	rt := httpmw.NewRetry(srv.Client().Transport, httpmw.WithRetry(fastRetry(3)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := &trackedBody{r: strings.NewReader("payload")}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL, body)
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil }
	if resp, err := rt.RoundTrip(req); !errors.Is(err, context.Canceled) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !body.closed.Load() {
		t.Error("the request body was left open")
	}
}

// A transport below that panics (and a caller that recovers) leaves no
// breaker outcome pending and no bulkhead slot held.
func TestPanicBelowReleases(t *testing.T) {
	bg := breaker.NewGroup(breaker.Settings{}, 0)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	panicking := httpmw.RoundTripperFunc(func(*http.Request) (*http.Response, error) { panic("transport bug") })
	rt := httpmw.Chain(panicking, httpmw.BreakerMiddleware(httpmw.WithBreakers(bg)), httpmw.BulkheadMiddleware(httpmw.WithBulkheads(hg)))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		_, _ = rt.RoundTrip(mustGet(t, "http://127.0.0.1:9/"))
	}()
	if n := hg.Get("127.0.0.1:9").InFlight(); n != 0 {
		t.Errorf("%d bulkhead slots held after the panic", n)
	}
	if c := bg.Get("127.0.0.1:9").Counts(); c.TotalNeutral != 1 {
		t.Errorf("breaker counts %+v after the panic, want one neutral outcome", c)
	}
}

// A write whose primary is half-open with its one probe taken is refused by
// the breaker after failover chose the primary: it fails at once with the
// same typed error as when failover finds the primary open.
func TestWriteToBusyHalfOpenPrimary(t *testing.T) {
	m := testMap(t)
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Millisecond, TimeoutJitter: -1}, 0)
	s := &script{}
	rt := httpmw.New(s, httpmw.WithRetry(fastRetry(3)), httpmw.WithBreakers(g),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: 8080}))
	primary := g.Get("127.0.2.5:8080") // partition 1's
	done, err := primary.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(breaker.Failure) // open, half-open a millisecond later
	for primary.State() != breaker.StateHalfOpen {
		runtime.Gosched()
	}
	probe, err := primary.Allow() // the one probe
	if err != nil {
		t.Fatal(err)
	}
	defer probe(breaker.Neutral)
	// A PUT runs the retry loop; a POST without an idempotency key is sent
	// once, outside it.
	for _, method := range []string{"PUT", "POST"} {
		req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), keyFor(t, m, 1)), method, "http://orders/x", nil)
		req.Host = "vhost.secret" // a Host header of the caller's: never in an error
		_, err = rt.RoundTrip(req)
		var ne *httpmw.NodeError
		if !errors.As(err, &ne) || !ne.Write || ne.Partition != 1 || ne.Host != "orders" || !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("%s: err = %v, want a write NodeError for orders partition 1 matching breaker.ErrOpen", method, err)
		}
		if strings.Contains(err.Error(), "vhost.secret") {
			t.Errorf("%s: err %q quotes the Host header", method, err)
		}
	}
	if n := s.count(); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}
