package grpcmw_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/sampling"
)

func newTracer(t *testing.T) (*sampling.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	return sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithMeterProvider(mp),
		sampling.WithPropagator(propagation.TraceContext{}), sampling.WithRatio(0)), exp
}

// With a ratio of 0, successful calls leave no spans, and a call that saw a
// failure is exported with one span per attempt; every attempt carries a
// traceparent to the node.
func TestTracing(t *testing.T) {
	tr, exp := newTracer(t)
	e := newEnv(t, nil, grpcmw.WithTracer(tr), grpcmw.WithRetry(fastRetry))
	m := e.w.Current()
	key := keyFor(t, m, 0)
	primary, replica := m.Partitions[0].Primary, m.Partitions[0].Replicas[0]

	if _, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key)); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("successful unsampled call exported %d spans, want 0", n)
	}
	if tp := e.c.Node(primary).LastTraceparent(); tp == "" || e.c.Node(primary).BadTraceparents() != 0 {
		t.Errorf("primary got traceparent %q (bad: %d)", tp, e.c.Node(primary).BadTraceparents())
	}

	e.c.Node(primary).SetErrorRate(1)
	r, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil || r.Node != replica {
		t.Fatalf("read: %v, %v", r, err)
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("errored call exported %d spans, want 3 (call and two attempts)", len(spans))
	}
	outcomes := map[string]int{}
	for _, s := range spans {
		if s.Name != "rampart.cluster.echo.v1.Echo/Echo" {
			t.Errorf("span name %q", s.Name)
		}
		for _, kv := range s.Attributes {
			if kv.Key == sampling.AttrOutcome {
				outcomes[kv.Value.AsString()]++
			}
		}
	}
	if outcomes["failure"] != 1 || outcomes["success"] < 1 {
		t.Errorf("outcomes %v, want a failure and a success attempt", outcomes)
	}
}
