package sampling_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/sampling"
)

func newReader(t testing.TB) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return rd, mp
}

// points returns, for the named metric, value (sum, gauge value or histogram
// count) by attribute set rendered as a string.
func points(t *testing.T, rd *sdkmetric.ManualReader, name string) map[string]float64 {
	t.Helper()
	return metrictest.Points(t, rd, name)
}

func TestTracerRecordsCallMetrics(t *testing.T) {
	rd, mp := newReader(t)
	e := newEnv(t, 0, sampling.WithMeterProvider(mp))
	boom := errors.New("boom")
	for range 10 {
		e.run(t, context.Background(), "ok", sampling.NoPolicy, []try{{node: "127.0.1.5:80", outcome: sampling.Success}}, nil)
	}
	for range 3 {
		e.run(t, context.Background(), "retry", sampling.NoPolicy, []try{
			{node: "127.0.1.5:80", outcome: sampling.Failure, err: boom},
			{node: "127.0.1.6:80", outcome: sampling.Success},
		}, nil)
	}
	e.run(t, context.Background(), "limited", sampling.PolicyRateLimit, nil, errors.New("limited"))

	check := func(name string, want map[string]float64) {
		t.Helper()
		got := points(t, rd, name)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
	check("rampart.calls", map[string]float64{
		"rampart.outcome=success":                           13,
		"rampart.outcome=rejected,rampart.policy=ratelimit": 1,
	})
	check("rampart.call.duration", map[string]float64{
		"rampart.outcome=success":                           13,
		"rampart.outcome=rejected,rampart.policy=ratelimit": 1,
	})
	// The run helper puts attempt i on partition i%3.
	check("rampart.attempts", map[string]float64{
		"rampart.node=127.0.1.5:80,rampart.outcome=success,rampart.partition=0": 10,
		"rampart.node=127.0.1.5:80,rampart.outcome=failure,rampart.partition=0": 3,
		"rampart.node=127.0.1.6:80,rampart.outcome=success,rampart.partition=1": 3,
	})
	check("rampart.retries", map[string]float64{"rampart.node=127.0.1.6:80,rampart.partition=1": 3})
}

func TestMetricsMethods(t *testing.T) {
	rd, mp := newReader(t)
	m, err := sampling.NewMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m.BudgetRefused(ctx, "n1", 2)
	m.BreakerTransition(ctx, "n1", sampling.BreakerClosed, sampling.BreakerOpen)
	m.BreakerState(ctx, "n2", sampling.BreakerHalfOpen)
	m.BulkheadRejected(ctx, "n1")
	m.BulkheadWait(ctx, "n1", 3*time.Millisecond)
	m.RateLimited(ctx, "")
	m.RateLimitWait(ctx, "", time.Millisecond)
	m.Failover(ctx, 1, "n1", "n2")
	m.Call(ctx, sampling.Failure, sampling.PolicyRetry, time.Second)

	want := map[string]map[string]float64{
		"rampart.retry_budget.refusals":   {"rampart.node=n1,rampart.partition=2": 1},
		"rampart.breaker.transitions":     {"rampart.breaker.from_state=closed,rampart.breaker.to_state=open,rampart.node=n1": 1},
		"rampart.breaker.state":           {"rampart.node=n1": 2, "rampart.node=n2": 1},
		"rampart.bulkhead.rejections":     {"rampart.node=n1": 1},
		"rampart.bulkhead.wait.duration":  {"rampart.node=n1": 1},
		"rampart.ratelimit.rejections":    {"": 1},
		"rampart.ratelimit.wait.duration": {"": 1},
		"rampart.failovers":               {"rampart.from_node=n1,rampart.partition=1,rampart.to_node=n2": 1},
		"rampart.calls":                   {"rampart.outcome=failure,rampart.policy=retry": 1},
	}
	for name, w := range want {
		if got := points(t, rd, name); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, w)
		}
	}

	var nilM *sampling.Metrics
	nilM.Call(ctx, sampling.Success, sampling.NoPolicy, 0)
	nilM.Failover(ctx, 0, "a", "b")
}

func TestMetricsOverflow(t *testing.T) {
	defer sampling.SetAttributeSetCap(3)()
	rd, mp := newReader(t)
	m, _ := sampling.NewMetrics(mp)
	for i := range 10 {
		m.BulkheadRejected(context.Background(), fmt.Sprintf("10.0.0.%d:1", i))
	}
	got := points(t, rd, "rampart.bulkhead.rejections")
	if len(got) != 4 || got["otel.metric.overflow=true"] != 7 {
		t.Fatalf("overflow: %v", got)
	}
}

func TestMetricsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not checked under -race")
	}
	_, mp := newReader(t)
	m, _ := sampling.NewMetrics(mp)
	ctx := context.Background()
	rec := func() {
		m.Attempt(ctx, "127.0.0.1:80", 0, sampling.Success)
		m.Retry(ctx, "127.0.0.1:80", 0)
		m.Call(ctx, sampling.Success, sampling.NoPolicy, time.Millisecond)
		m.BreakerTransition(ctx, "127.0.0.1:80", sampling.BreakerOpen, sampling.BreakerHalfOpen)
		m.BulkheadWait(ctx, "127.0.0.1:80", time.Millisecond)
		m.Failover(ctx, 0, "127.0.0.1:80", "127.0.0.2:80")
	}
	rec() // build the attribute sets
	if n := testing.AllocsPerRun(1000, rec); n != 0 {
		t.Fatalf("metrics recording: %v allocs/op, want 0", n)
	}

	// The whole unsampled call with metrics on.
	e := newEnv(t, 0, sampling.WithMeterProvider(mp))
	call := func() {
		cctx, c := e.tr.Start(ctx, "GET", trace.SpanKindClient)
		_, a := c.StartAttempt(cctx, "127.0.0.1:80", 0)
		a.End(sampling.Success, nil, 0)
		c.End(nil)
	}
	call()
	if n := testing.AllocsPerRun(1000, call); n != 0 {
		t.Fatalf("unsampled call with metrics: %v allocs/op, want 0", n)
	}
}
