package sampling_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rampart-go/rampart/sampling"
)

// A transport records each attempt and each call. This call failed on the
// primary, failed over to a replica and succeeded there; a ManualReader
// collects what was recorded.
func ExampleNewMetrics() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	m, err := sampling.NewMetrics(mp)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	m.Attempt(ctx, "127.0.1.5", 0, sampling.Failure)
	m.Retry(ctx, "127.0.1.6", 0)
	m.Failover(ctx, 0, "127.0.1.5", "127.0.1.6")
	m.Attempt(ctx, "127.0.1.6", 0, sampling.Success)
	m.Call(ctx, sampling.Success, sampling.NoPolicy, 30*time.Millisecond)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		fmt.Println(err)
		return
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch data := md.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s {%s} %d", md.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value))
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					lines = append(lines, fmt.Sprintf("%s {%s} count=%d sum=%gs", md.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Count, dp.Sum))
				}
			}
		}
	}
	slices.Sort(lines) // the SDK does not promise an order
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// rampart.attempts {rampart.node=127.0.1.5,rampart.outcome=failure,rampart.partition=0} 1
	// rampart.attempts {rampart.node=127.0.1.6,rampart.outcome=success,rampart.partition=0} 1
	// rampart.call.duration {rampart.outcome=success} count=1 sum=0.03s
	// rampart.calls {rampart.outcome=success} 1
	// rampart.failovers {rampart.from_node=127.0.1.5,rampart.partition=0,rampart.to_node=127.0.1.6} 1
	// rampart.retries {rampart.node=127.0.1.6,rampart.partition=0} 1
}
