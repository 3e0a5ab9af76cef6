package sampling_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-go/rampart/sampling"
)

// discard is a span processor that drops every span, so benchmarks measure
// span creation and not an exporter.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }

func benchProvider(b *testing.B) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

func benchTracer(b *testing.B, ratio float64, opts ...sampling.Option) *sampling.Tracer {
	opts = append([]sampling.Option{
		sampling.WithTracerProvider(benchProvider(b)),
		sampling.WithPropagator(propagation.TraceContext{}),
		sampling.WithRatio(ratio),
	}, opts...)
	return sampling.NewTracer(opts...)
}

// oneCall is the whole per-call path a transport runs for one logical call
// with one attempt.
func oneCall(tr *sampling.Tracer, ctx context.Context, carrier propagation.TextMapCarrier, o sampling.Outcome, err error) {
	cctx, c := tr.Start(ctx, "GET", trace.SpanKindClient)
	actx, a := c.StartAttempt(cctx, "127.0.1.5:8080", 0)
	a.Inject(actx, carrier)
	a.End(o, err, 0)
	c.End(err)
}

// BenchmarkUnsampledCall is the unsampled success path: start call, start
// attempt, inject, end attempt, end call.
func BenchmarkUnsampledCall(b *testing.B) {
	ctx := context.Background()
	b.Run("inject", func(b *testing.B) {
		tr := benchTracer(b, 0)
		carrier := propagation.MapCarrier{"traceparent": ""}
		b.ReportAllocs()
		for b.Loop() {
			oneCall(tr, ctx, carrier, sampling.Success, nil)
		}
	})
	b.Run("append-traceparent", func(b *testing.B) {
		tr := benchTracer(b, 0)
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		for b.Loop() {
			cctx, c := tr.Start(ctx, "GET", trace.SpanKindClient)
			_, a := c.StartAttempt(cctx, "127.0.1.5:8080", 0)
			buf = a.AppendTraceparent(buf[:0])
			a.End(sampling.Success, nil, 0)
			c.End(nil)
		}
	})
	b.Run("inject+metrics", func(b *testing.B) {
		_, mp := newReader(b)
		tr := benchTracer(b, 0, sampling.WithMeterProvider(mp))
		carrier := propagation.MapCarrier{"traceparent": ""}
		b.ReportAllocs()
		for b.Loop() {
			oneCall(tr, ctx, carrier, sampling.Success, nil)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		tr := benchTracer(b, 0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 64)
			for pb.Next() {
				cctx, c := tr.Start(ctx, "GET", trace.SpanKindClient)
				_, a := c.StartAttempt(cctx, "127.0.1.5:8080", 0)
				buf = a.AppendTraceparent(buf[:0])
				a.End(sampling.Success, nil, 0)
				c.End(nil)
			}
		})
	})
}

// BenchmarkSampledCall is a head-sampled call: two live SDK spans.
func BenchmarkSampledCall(b *testing.B) {
	tr := benchTracer(b, 1)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr = sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(1),
		sampling.WithPropagator(propagation.TraceContext{}))
	carrier := propagation.MapCarrier{"traceparent": ""}
	b.ReportAllocs()
	for b.Loop() {
		oneCall(tr, context.Background(), carrier, sampling.Success, nil)
	}
}

// BenchmarkErroredCall is an unsampled call whose attempt fails: its two
// spans are built after the fact.
func BenchmarkErroredCall(b *testing.B) {
	tr := benchTracer(b, 0)
	carrier := propagation.MapCarrier{"traceparent": ""}
	boom := errors.New("boom")
	b.ReportAllocs()
	for b.Loop() {
		oneCall(tr, context.Background(), carrier, sampling.Failure, boom)
	}
}

// BenchmarkOtelSDKSpan is the reference: one SDK span started, injected and
// ended with ParentBased(TraceIDRatioBased(0.01)), as an instrumentation like
// otelhttp does per request (unsampled 99% of the time).
func BenchmarkOtelSDKSpan(b *testing.B) {
	tracer := benchProvider(b).Tracer("bench")
	prop := propagation.TraceContext{}
	carrier := propagation.MapCarrier{"traceparent": ""}
	ctx := context.Background()
	b.Run("one-span", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sctx, sp := tracer.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient))
			prop.Inject(sctx, carrier)
			sp.End()
		}
	})
	b.Run("call+attempt-spans", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cctx, cs := tracer.Start(ctx, "GET")
			actx, as := tracer.Start(cctx, "GET", trace.WithSpanKind(trace.SpanKindClient))
			prop.Inject(actx, carrier)
			as.End()
			cs.End()
		}
	})
}
