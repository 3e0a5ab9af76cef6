package httpmw_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// TestPresetRecordsBreakerTransitions checks that a preset with a tracer
// records its breakers' transitions and state in the tracer's metrics, while
// the user's own OnStateChange still runs.
func TestPresetRecordsBreakerTransitions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	node := srv.Listener.Addr().String()

	tracer, reader := metrictest.Tracer(t)

	opened := 0
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute,
		OnStateChange: func(ev breaker.StateChange) {
			if ev.To == breaker.StateOpen {
				opened++
			}
		}}, 0)
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.New(transport, httpmw.WithBreakers(bg), httpmw.WithTracer(tracer),
		httpmw.WithRetry(&retry.Policy{MaxAttempts: 1}))}
	u, _ := url.Parse(srv.URL)
	resp, err := client.Get(u.String())
	if err == nil {
		resp.Body.Close()
	}
	if opened != 1 || bg.Get(node).State() != breaker.StateOpen {
		t.Fatalf("breaker of %s: opened %d times, state %v; want opened once", node, opened, bg.Get(node).State())
	}

	metrictest.BreakerOpened(t, reader, node)
}

// TestPresetRecordsWaits: a call that waited for the rate limiter and for
// a bulkhead slot, against a real server, shows in the wait histograms;
// calls that did not wait record nothing there.
func TestPresetRecordsWaits(t *testing.T) {
	entered, release := make(chan struct{}, 2), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer srv.Close()
	node := srv.Listener.Addr().String()

	tracer, reader := metrictest.Tracer(t)
	lim, err := ratelimit.New(ratelimit.Config{Rate: rate.Every(20 * time.Millisecond), Burst: 1, MaxWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 10 * time.Second}, 0)
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.New(transport, httpmw.WithTracer(tracer), httpmw.WithRateLimit(lim),
		httpmw.WithBulkheads(bg), httpmw.WithRetry(&retry.Policy{MaxAttempts: 1}))}

	done := make(chan error, 2)
	get := func() {
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}
	go get()
	<-entered // the first call holds the node's only slot
	if n := metrictest.Total(t, reader, "rampart.ratelimit.wait.duration", nil); n > 0 {
		t.Errorf("the first call, which had a token, recorded %v rate-limit waits", n)
	}
	lim.Allow() // empty the bucket, however long the first call took
	go get()    // waits for a token, then in the bulkhead's queue
	for deadline := time.Now().Add(10 * time.Second); bg.Get(node).Queued() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second call never queued")
		}
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := metrictest.Total(t, reader, "rampart.ratelimit.wait.duration", nil); n != 1 {
		t.Errorf("rate-limit waits recorded: %v, want 1", n)
	}
	if n := metrictest.Total(t, reader, "rampart.bulkhead.wait.duration", metrictest.Has(sampling.AttrNode, node)); n != 1 {
		t.Errorf("bulkhead waits recorded for %s: %v, want 1 (%v)", node, n, metrictest.Points(t, reader, "rampart.bulkhead.wait.duration"))
	}
}
