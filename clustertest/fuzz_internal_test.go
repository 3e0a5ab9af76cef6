package clustertest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// FuzzValidTraceparent checks the nodes' traceparent check against the
// OpenTelemetry W3C propagator: whatever the node accepts, the propagator
// extracts as a valid remote span context with the same IDs and flags, and
// the check never panics.
func FuzzValidTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
		"",
	} {
		f.Add(s)
	}
	prop := propagation.TraceContext{}
	f.Fuzz(func(t *testing.T, v string) {
		if !ValidTraceparent(v) {
			return
		}
		ctx := prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": v})
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() || !sc.IsRemote() {
			t.Fatalf("node accepts %q, the W3C propagator does not", v)
		}
		if got := sc.TraceID().String(); got != v[3:35] {
			t.Fatalf("%q: propagator trace id %s", v, got)
		}
		if got := sc.SpanID().String(); got != v[36:52] {
			t.Fatalf("%q: propagator span id %s", v, got)
		}
	})
}
