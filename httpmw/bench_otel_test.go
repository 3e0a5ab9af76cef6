package httpmw_test

// The tracing middleware alone against its peer, otelhttp.NewTransport, on
// the same stub transport and TracerProvider configuration:
//
//	go test -run '^$' -bench 'Tracing|Otel' -benchmem -count=6 ./httpmw/ | benchstat -

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/sampling"
)

// reusedRT answers every request with the same response value, reset on
// each call: no network and no allocation, so that what a benchmark
// allocates is the middleware's own. Single goroutine only.
type reusedRT struct {
	code int
	resp http.Response
}

func (s *reusedRT) RoundTrip(r *http.Request) (*http.Response, error) {
	s.resp = http.Response{StatusCode: s.code, Body: http.NoBody, Request: r}
	return &s.resp, nil
}

// discardExporter is a span exporter that drops what it is given.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// benchTP is an SDK TracerProvider with a ParentBased(TraceIDRatioBased(r))
// sampler whose spans go, synchronously, to an exporter that drops them.
func benchTP(b *testing.B, r float64) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r))),
		sdktrace.WithSyncer(discardExporter{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// benchTraced sends one GET through rt per iteration.
func benchTraced(b *testing.B, rt http.RoundTripper) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/item?id=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// benchCases are the paths measured: the ratio of the head decision (and
// of the provider's sampler) and the stub's status code.
var benchCases = []struct {
	name  string
	ratio float64
	code  int
}{
	{"unsampled", 0, http.StatusOK},    // pure unsampled success path
	{"ratio1pct", 0.01, http.StatusOK}, // ~99% unsampled
	{"sampled", 1, http.StatusOK},      // every call exported
	{"error", 0.01, http.StatusInternalServerError},
}

// BenchmarkTracing is the rampart tracing middleware alone around a stub
// (no retry below: it makes the single attempt itself).
func BenchmarkTracing(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			tr := sampling.NewTracer(sampling.WithTracerProvider(benchTP(b, bc.ratio)),
				sampling.WithRatio(bc.ratio), sampling.WithMeterProvider(metricnoop.NewMeterProvider()))
			benchTraced(b, httpmw.NewTracing(&reusedRT{code: bc.code}, httpmw.WithTracer(tr)))
		})
	}
	// The unsampled path with the SDK metrics pipeline recording calls and
	// attempts (collected by a ManualReader): recording allocates nothing.
	b.Run("unsampled-sdkmetrics", func(b *testing.B) {
		tr := sampling.NewTracer(sampling.WithTracerProvider(benchTP(b, 0)),
			sampling.WithRatio(0), sampling.WithMeterProvider(benchMP(b)))
		benchTraced(b, httpmw.NewTracing(&reusedRT{code: http.StatusOK}, httpmw.WithTracer(tr)))
	})
	b.Run("bare", func(b *testing.B) { benchTraced(b, &reusedRT{code: http.StatusOK}) })
}

func benchMP(b *testing.B) metric.MeterProvider {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// BenchmarkOtel is otelhttp.NewTransport around the same stub, with the
// same provider configuration and the W3C trace-context propagator.
func BenchmarkOtel(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			benchTraced(b, otelhttp.NewTransport(&reusedRT{code: bc.code},
				otelhttp.WithTracerProvider(benchTP(b, bc.ratio)),
				otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
				otelhttp.WithPropagators(propagation.TraceContext{})))
		})
	}
	b.Run("unsampled-sdkmetrics", func(b *testing.B) {
		benchTraced(b, otelhttp.NewTransport(&reusedRT{code: http.StatusOK},
			otelhttp.WithTracerProvider(benchTP(b, 0)),
			otelhttp.WithMeterProvider(benchMP(b)),
			otelhttp.WithPropagators(propagation.TraceContext{})))
	})
}
