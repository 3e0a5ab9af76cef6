package sampling_test

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-go/rampart/sampling"
)

// A transport starts one Call per logical call and one Attempt per try. This
// call is not head-sampled (ratio 0), but its first attempt fails, so it is
// exported with status Error: a logical span and one span per attempt.
func ExampleTracer_Start() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	tr := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(0),
		sampling.WithResendCountKey("http.request.resend_count"))

	ctx, call := tr.Start(context.Background(), "HTTP GET", trace.SpanKindInternal)
	for i, node := range []string{"127.0.1.5:8080", "127.0.1.6:8080"} {
		actx, a := call.StartAttempt(ctx, node, 0)
		header := propagation.MapCarrier{}
		a.Inject(actx, header) // traceparent: 00-<trace>-<span>-00
		if i == 0 {
			a.End(sampling.Failure, errors.New("connection refused"), 0)
			continue
		}
		a.End(sampling.Success, nil, 0)
	}
	call.End(nil)

	for _, s := range exp.GetSpans() {
		fmt.Println(s.Name, s.SpanKind, s.Status.Code)
	}
	// Output:
	// HTTP GET client Error
	// HTTP GET client Unset
	// HTTP GET internal Error
}
