package sampling_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rampart-go/rampart/sampling"
)

// The call and attempt counters are observable: totals kept per attribute
// set and reported at each collection, cumulative or as deltas as the
// reader asks.
func TestObservableCountersAcrossCollections(t *testing.T) {
	for _, tc := range []struct {
		name  string
		temp  metricdata.Temporality
		want2 float64
	}{
		{"cumulative", metricdata.CumulativeTemporality, 5},
		{"delta", metricdata.DeltaTemporality, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(
				func(sdkmetric.InstrumentKind) metricdata.Temporality { return tc.temp }))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
			t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			m, err := sampling.NewMetrics(mp)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			record := func(n int) {
				for range n {
					m.Call(ctx, sampling.Success, sampling.NoPolicy, time.Millisecond)
					m.Attempt(ctx, "n1:80", 0, sampling.Success)
				}
			}
			record(3)
			if got := points(t, rd, "rampart.calls")["rampart.outcome=success"]; got != 3 {
				t.Fatalf("first collection: calls %v, want 3", got)
			}
			record(2)
			if got := points(t, rd, "rampart.attempts")["rampart.node=n1:80,rampart.outcome=success,rampart.partition=0"]; got != tc.want2 {
				t.Fatalf("second collection: attempts %v, want %v", got, tc.want2)
			}
			if got := points(t, rd, "rampart.calls"); len(got) != 1 {
				t.Fatalf("calls reported for sets never counted: %v", got)
			}
		})
	}
}
