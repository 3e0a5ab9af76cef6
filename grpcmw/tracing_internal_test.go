package grpcmw

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/rampart-go/rampart/sampling"
)

// startAttempt sends what the tracer's propagator injects into the
// caller's outgoing metadata, whether it takes the plain-traceparent path
// or the propagator's own: same keys, same values, caller's trace context
// (traceparent and tracestate) replaced, caller's other metadata kept.
func TestStartAttemptMetadata(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		t.Fatal(err)
	}
	parentSC := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, TraceState: ts,
	})
	for _, tc := range []struct {
		name  string
		ratio float64
		prop  propagation.TextMapPropagator
		ctx   func() context.Context
	}{
		{"plain, unsampled", 0, propagation.TraceContext{}, context.Background},
		{"plain, sampled", 1, propagation.TraceContext{}, context.Background},
		{"plain, caller metadata", 0, propagation.TraceContext{}, func() context.Context {
			return metadata.NewOutgoingContext(context.Background(), metadata.Pairs("a", "1", "traceparent", "old"))
		}},
		{"plain, appended caller trace state", 0, propagation.TraceContext{}, func() context.Context {
			return metadata.AppendToOutgoingContext(context.Background(), "TraceState", "old")
		}},
		{"plain, parent trace state", 0, propagation.TraceContext{}, func() context.Context {
			return trace.ContextWithRemoteSpanContext(context.Background(), parentSC)
		}},
		{"composite", 0, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), context.Background},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(tc.ratio),
				sampling.WithPropagator(tc.prop), sampling.WithoutPooling())
			ctx := tc.ctx()
			tctx := startTrace(ctx, tr, "/echo.Echo/Echo")
			octx, att, _ := startAttempt(tctx, &tctx.ts, nil)
			got, _ := metadata.FromOutgoingContext(octx)

			want, ok := metadata.FromOutgoingContext(ctx)
			if !ok {
				want = metadata.MD{}
			}
			want.Delete("traceparent")
			want.Delete("tracestate")
			att.Inject(tctx.ts.sctx, mdCarrier(want))
			att.End(sampling.Success, nil, 0)
			tctx.ts.end(nil)
			if len(got) != len(want) {
				t.Fatalf("metadata %v, want %v", got, want)
			}
			for k, v := range want {
				if g := got[k]; len(g) != len(v) || (len(v) > 0 && g[0] != v[0]) {
					t.Errorf("%s: %q, want %q", k, g, v)
				}
			}
			if len(got["traceparent"]) != 1 {
				t.Errorf("traceparent %q, want one value", got["traceparent"])
			}
			for _, v := range got["tracestate"] {
				if v == "old" {
					t.Errorf("the caller's tracestate %q was sent with our traceparent", v)
				}
			}
		})
	}
}
