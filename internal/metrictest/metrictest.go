// Package metrictest reads, for tests, what an OpenTelemetry SDK
// ManualReader collected and what a span recorded, and makes the tracer
// whose metrics such a reader collects.
package metrictest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rampart-go/rampart/sampling"
)

// Tracer returns a sampling tracer that samples no successful call, and the
// manual reader that collects its metrics; its meter provider is shut down
// when the test ends.
func Tracer(t testing.TB) (*sampling.Tracer, *sdkmetric.ManualReader) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return sampling.NewTracer(sampling.WithMeterProvider(mp), sampling.WithRatio(0)), reader
}

// each collects rd and calls fn with every data point of the metric named
// name: a sum's or a gauge's value, a histogram's count.
func each(t testing.TB, rd *sdkmetric.ManualReader, name string, fn func(attrs attribute.Set, v float64)) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					fn(p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					fn(p.Attributes, float64(p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					fn(p.Attributes, float64(p.Count))
				}
			default:
				t.Fatalf("%s: unexpected data %T", name, m.Data)
			}
		}
	}
}

// Points returns the named metric's values by attribute set, rendered as
// "key=value,..." in key order.
func Points(t testing.TB, rd *sdkmetric.ManualReader, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	each(t, rd, name, func(attrs attribute.Set, v float64) {
		out[attrs.Encoded(attribute.DefaultEncoder())] = v
	})
	return out
}

// Total returns the sum of the named metric's values whose attributes
// match (every point when match is nil), and -1 when none does.
func Total(t testing.TB, rd *sdkmetric.ManualReader, name string, match func(attribute.Set) bool) float64 {
	t.Helper()
	total, found := 0.0, false
	each(t, rd, name, func(attrs attribute.Set, v float64) {
		if match == nil || match(attrs) {
			total, found = total+v, true
		}
	})
	if !found {
		return -1
	}
	return total
}

// Has returns a matcher of attribute sets whose key k has the string value v.
func Has(k attribute.Key, v string) func(attribute.Set) bool {
	return func(s attribute.Set) bool {
		got, ok := s.Value(k)
		return ok && got.AsString() == v
	}
}

// All returns a matcher of the attribute sets every one of ms matches.
func All(ms ...func(attribute.Set) bool) func(attribute.Set) bool {
	return func(s attribute.Set) bool {
		for _, m := range ms {
			if !m(s) {
				return false
			}
		}
		return true
	}
}

// SpanAttr returns the value of span s's attribute k.
func SpanAttr(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// PropagatedSpanID returns the span ID that attempt span s sent downstream:
// its own, or, for an attempt of a call exported only because it failed,
// the one recorded in its rampart.propagated_span_id attribute.
func PropagatedSpanID(s sdktrace.ReadOnlySpan) string {
	if v, ok := SpanAttr(s, propagatedSpanID); ok {
		return v.AsString()
	}
	return s.SpanContext().SpanID().String()
}

// propagatedSpanID is sampling.AttrPropagatedSpanID (this package is also
// used by sampling's own tests, so it does not import sampling).
const propagatedSpanID = attribute.Key("rampart.propagated_span_id")

// BreakerOpened checks that rd recorded one transition to open for node's
// breaker and that its state gauge says open.
func BreakerOpened(t testing.TB, rd *sdkmetric.ManualReader, node string) {
	t.Helper()
	transitions := Total(t, rd, "rampart.breaker.transitions",
		All(Has(sampling.AttrNode, node), Has(sampling.AttrToState, "open")))
	state := Total(t, rd, "rampart.breaker.state", Has(sampling.AttrNode, node))
	if transitions != 1 {
		t.Errorf("rampart.breaker.transitions{node=%s,to=open} = %v, want 1", node, transitions)
	}
	if state != sampling.BreakerOpen {
		t.Errorf("rampart.breaker.state{node=%s} = %v, want %d (open)", node, state, sampling.BreakerOpen)
	}
}
