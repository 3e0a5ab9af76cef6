package httpmw_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

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

// captureRT records the headers of the requests it answers with 200.
type captureRT struct{ headers []http.Header }

func (c *captureRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.headers = append(c.headers, r.Header.Clone())
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
}

// Every attempt carries what the W3C propagator would write for it: the
// parent's tracestate when it has one, and never a tracestate the caller's
// header held for the traceparent rampart replaces.
func TestTracingTracestate(t *testing.T) {
	tracer := sampling.NewTracer(sampling.WithRatio(0), sampling.WithTracerProvider(tracenoop.NewTracerProvider()))
	capt := &captureRT{}
	rt := httpmw.NewTracing(capt, httpmw.WithTracer(tracer))
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceState: ts, Remote: true})
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		wantTS string
	}{
		{"parent with tracestate", trace.ContextWithRemoteSpanContext(context.Background(), parent), "vendor=abc"},
		{"no parent", context.Background(), ""},
	} {
		req, _ := http.NewRequestWithContext(tc.ctx, "GET", "http://127.0.0.1:1/", nil)
		req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		req.Header.Set("Tracestate", "stale=1")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := capt.headers[len(capt.headers)-1]
		if got := h.Values("Tracestate"); tc.wantTS == "" && len(got) != 0 || tc.wantTS != "" && (len(got) != 1 || got[0] != tc.wantTS) {
			t.Errorf("%s: tracestate %q, want %q", tc.name, got, tc.wantTS)
		}
		tp := h.Get("Traceparent")
		if strings.Contains(tp, "0af7651916cd43dd8448eb211c80319c") {
			t.Errorf("%s: the caller's traceparent was sent", tc.name)
		}
		if tc.wantTS != "" && !strings.HasPrefix(tp, "00-"+parent.TraceID().String()) {
			t.Errorf("%s: traceparent %q not in the parent's trace", tc.name, tp)
		}
		if req.Header.Get("Tracestate") != "stale=1" {
			t.Errorf("%s: the caller's header was modified", tc.name)
		}
	}
}

// The tracing middleware of a tracer made before the program set otel's
// global propagator sends what that propagator writes (here baggage too).
func TestTracingGlobalPropagatorSetLater(t *testing.T) {
	tracer := sampling.NewTracer(sampling.WithRatio(0))
	capt := &captureRT{}
	rt := httpmw.NewTracing(capt, httpmw.WithTracer(tracer))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) }) // injects nothing again

	m, _ := baggage.NewMember("tenant", "acme")
	b, _ := baggage.New(m)
	req, _ := http.NewRequestWithContext(baggage.ContextWithBaggage(context.Background(), b), "GET", "http://127.0.0.1:1/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := capt.headers[0]; h.Get("Traceparent") == "" || h.Get("Baggage") != "tenant=acme" {
		t.Fatalf("sent traceparent %q baggage %q; want both", h.Get("Traceparent"), h.Get("Baggage"))
	}
}
