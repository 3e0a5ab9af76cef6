package httpmw_test

import (
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/sampling"
)

// With tracing at ratio 0, a clean call exports nothing but still sends a
// traceparent; a call that needed a retry is exported with its attempts,
// and no span carries the URL's query.
func TestClusterTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	tracer := sampling.NewTracer(sampling.WithRatio(0), sampling.WithTracerProvider(tp))
	e := newEnv(t, httpmw.WithTracer(tracer))
	primary := e.c.Node("127.0.11.5")

	resp, err := e.get(t, e.key0)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.Request.Header.Get("Traceparent") == "" || primary.LastTraceparent() == "" || primary.BadTraceparents() != 0 {
		t.Fatalf("traceparent not sent (node saw %q)", primary.LastTraceparent())
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans exported for an unsampled clean call", n)
	}

	primary.SetErrorRate(1) // first attempt fails, the replica answers
	resp, err = e.get(t, e.key0)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	spans := rec.Ended()
	if len(spans) < 3 { // the call and its two attempts
		t.Fatalf("%d spans exported for an errored call", len(spans))
	}
	nodes := map[string]bool{}
	for _, s := range spans {
		if strings.Contains(s.Name(), "id=") {
			t.Errorf("span name %q carries the query", s.Name())
		}
		for _, kv := range s.Attributes() {
			v := kv.Value.Emit()
			if strings.Contains(v, "id=1") || strings.Contains(v, "/item") {
				t.Errorf("span attribute %s=%q carries the URL", kv.Key, v)
			}
			if kv.Key == "server.address" {
				nodes[v] = true
			}
		}
	}
	if !nodes["127.0.11.5"] || !nodes["127.0.11.6"] {
		t.Errorf("attempt spans name nodes %v, want the primary and the replica", nodes)
	}
	if primary.BadTraceparents() != 0 || e.c.Node("127.0.11.6").LastTraceparent() == "" {
		t.Fatal("bad or missing traceparent on the retry")
	}
	_ = clustertest.HeaderNode
}
