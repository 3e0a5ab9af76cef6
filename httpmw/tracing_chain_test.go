package httpmw_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// The caller's own middleware between Tracing and Retry: Tracing cannot see
// the retry loop below, and starts the first attempt; the loop adopts it
// and starts the others. The first attempt gets a 503, the retry a 200: the
// call is exported with a span per attempt, each attempt with its own
// traceparent (the loop's tries were one attempt, never exported).
func TestMiddlewareBetweenTracingAndRetry(t *testing.T) {
	srv := failOnceServer(t)
	tr, exp := errorsOnlyTracer(t)

	base := &http.Transport{}
	defer base.CloseIdleConnections()
	logging := func(next http.RoundTripper) http.RoundTripper {
		return httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return next.RoundTrip(r) })
	}
	rt := httpmw.Chain(base,
		httpmw.TracingMiddleware(httpmw.WithTracer(tr)),
		logging,
		httpmw.RetryMiddleware(httpmw.WithRetry(&retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})),
	)
	client := &http.Client{Transport: rt}
	resp, err := client.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tps := srv.traceparents()
	if resp.StatusCode != 200 || len(tps) != 2 {
		t.Fatalf("status %d after %d requests", resp.StatusCode, len(tps))
	}
	spans := exp.GetSpans()
	t.Logf("server saw traceparents %q; %d spans exported", tps, len(spans))
	if len(spans) != 3 {
		t.Errorf("call with a failed attempt: %d spans exported, want 3 (the call and its 2 attempts)", len(spans))
	}
	if len(tps) == 2 && tps[0] == tps[1] {
		t.Errorf("both attempts sent the same traceparent %q", tps[0])
	}
}

// The chain tracing → rate limit → failover (no retry): Tracing starts the
// attempt before the rate limit, and failover routes it below: the attempt
// names the node it went to (it named the logical host).
func TestTracingRateLimitFailoverNode(t *testing.T) {
	m := clusterMap(t)
	c := clustertest.New(t, m)
	base, _ := countingTransport(t)
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := sampling.NewTracer(sampling.WithRatio(1), sampling.WithTracerProvider(tp), sampling.WithMeterProvider(mp))
	lim, err := ratelimit.New(ratelimit.Config{Rate: rate.Inf, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc := httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(c.Map()), Port: c.HTTPPort()}
	rt := httpmw.Chain(base,
		httpmw.TracingMiddleware(httpmw.WithTracer(tr)),
		httpmw.RateLimitMiddleware(httpmw.WithRateLimit(lim)),
		httpmw.FailoverMiddleware(httpmw.WithService(svc)),
	)
	key := keyFor(t, m, 0)
	req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), key), "GET", "http://orders/item", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	served := resp.Header.Get(clustertest.HeaderNode)
	resp.Body.Close()
	got := metrictest.Points(t, rd, "rampart.attempts")
	for k := range got {
		if !strings.Contains(k, "rampart.node="+served) {
			t.Errorf("rampart.attempts point %s does not name %s, the node served", k, served)
		}
	}
	for _, s := range exp.GetSpans() {
		if v, ok := attrOf(s.Attributes, sampling.AttrAttempt); ok {
			addr, _ := attrOf(s.Attributes, sampling.AttrServerAddress)
			t.Logf("attempt %d span server.address=%q", v.AsInt64(), addr.Emit())
			if addr.AsString() != served {
				t.Errorf("attempt span names %q, the request went to %s", addr.Emit(), served)
			}
		}
	}
}
