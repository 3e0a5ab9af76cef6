package brkobs

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/sampling"
)

// Two presets sharing a group and a tracer count each transition once; a
// second tracer's Metrics gets its own count.
func TestObserveOncePerPair(t *testing.T) {
	newMetrics := func() (*sampling.Metrics, *sdkmetric.ManualReader) {
		r := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		return sampling.NewTracer(sampling.WithMeterProvider(mp)).Metrics(), r
	}
	m1, r1 := newMetrics()
	m2, r2 := newMetrics()
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1}, 0)
	Observe(g, m1)
	Observe(g, m1) // a second preset on the same group and tracer
	Observe(g, m2)
	Observe(nil, m1)
	Observe(g, nil)
	done, err := g.Get("10.0.0.1:80").Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(breaker.Failure) // closed → open
	for i, r := range []*sdkmetric.ManualReader{r1, r2} {
		if n := metrictest.Total(t, r, "rampart.breaker.transitions", nil); n != 1 {
			t.Errorf("metrics %d: %v transitions recorded, want 1", i+1, n)
		}
	}
}

// Two tracers on one MeterProvider record into the same instruments: a
// group they share counts each transition once, not once per tracer.
func TestObserveOncePerProvider(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1}, 0)
	Observe(g, sampling.NewTracer(sampling.WithMeterProvider(mp)).Metrics())
	Observe(g, sampling.NewTracer(sampling.WithMeterProvider(mp), sampling.WithRatio(1)).Metrics())
	done, err := g.Get("10.0.0.1:80").Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(breaker.Failure) // closed → open
	if n := metrictest.Total(t, r, "rampart.breaker.transitions", nil); n != 1 {
		t.Errorf("%v transitions recorded, want 1", n)
	}
}
