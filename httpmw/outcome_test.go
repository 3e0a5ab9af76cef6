package httpmw_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// A call whose only attempt got a 503 (a failure, returned to the caller as
// the response) has the outcome failure, on its logical span and in
// rampart.calls: it was recorded as a success.
func TestFailedResponseCallOutcome(t *testing.T) {
	srv := unavailableServer(t)
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tr, exp := errorsOnlyTracer(t, sampling.WithMeterProvider(mp))

	tr2 := &http.Transport{}
	defer tr2.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.NewTracing(tr2, httpmw.WithTracer(tr))}
	resp, err := client.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Logf("rampart.calls: %v", metrictest.Points(t, rd, "rampart.calls"))
	t.Logf("rampart.attempts: %v", metrictest.Points(t, rd, "rampart.attempts"))
	for _, s := range exp.GetSpans() {
		for _, kv := range s.Attributes {
			if kv.Key == sampling.AttrOutcome && s.SpanKind.String() == "client" && s.Parent.IsRemote() {
				t.Logf("logical span %q outcome=%s status=%v", s.Name, kv.Value.Emit(), s.Status.Code)
				if kv.Value.AsString() == "success" {
					t.Errorf("call whose only attempt failed (503) has logical outcome %q", kv.Value.AsString())
				}
			}
		}
	}
	if n := metrictest.Total(t, rd, "rampart.calls", metrictest.Has(sampling.AttrOutcome, "success")); n > 0 {
		t.Errorf("rampart.calls{outcome=success} = %v for a call that got a 503", n)
	}
}

// An exported attempt span carries its response's status code, as
// Tracing's documentation says.
func TestAttemptSpanHasStatusCode(t *testing.T) {
	srv := unavailableServer(t)
	tr, exp := errorsOnlyTracer(t)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.NewTracing(base, httpmw.WithTracer(tr))}
	resp, err := client.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans {
		var keys []string
		found := false
		for _, kv := range s.Attributes {
			keys = append(keys, string(kv.Key))
			if kv.Value.Emit() == "503" {
				found = true
			}
		}
		t.Logf("span %q attributes %v", s.Name, keys)
		if _, ok := attrOf(s.Attributes, sampling.AttrAttempt); ok && !found {
			t.Errorf("attempt span of a 503 carries no status code")
		}
	}
}

func attrOf(kvs []attribute.KeyValue, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// unavailableServer answers every request 503.
func unavailableServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// errorsOnlyTracer is a tracer that head-samples nothing, so that only the
// calls that saw an error reach its exporter, which it returns.
func errorsOnlyTracer(t *testing.T, opts ...sampling.Option) (*sampling.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts = append([]sampling.Option{sampling.WithRatio(0), sampling.WithTracerProvider(tp)}, opts...)
	return sampling.NewTracer(opts...), exp
}

// Every exported attempt span carries http.response.status_code, as
// Tracing's documentation says: also the successful retry of an unsampled
// call exported because its first attempt got a 503.
func TestExportedRetrySpanHasStatusCode(t *testing.T) {
	srv := failOnceServer(t)
	tr, exp := errorsOnlyTracer(t)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	rt := httpmw.Chain(base,
		httpmw.TracingMiddleware(httpmw.WithTracer(tr)),
		httpmw.RetryMiddleware(httpmw.WithRetry(&retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})),
	)
	resp, err := (&http.Client{Transport: rt}).Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans exported, want the call and its 2 attempts", len(spans))
	}
	for _, s := range spans {
		a, ok := attrOf(s.Attributes, sampling.AttrAttempt)
		if !ok {
			continue
		}
		code, has := attrOf(s.Attributes, "http.response.status_code")
		t.Logf("exported attempt %d: http.response.status_code %v (present %v)", a.AsInt64(), code.Emit(), has)
		if !has {
			t.Errorf("exported span of attempt %d carries no http.response.status_code", a.AsInt64())
		}
	}
}

// onceFailing is a loopback server whose first request gets a 503 and
// every later one a 200; it keeps the traceparent of each request.
type onceFailing struct {
	*httptest.Server
	mu  sync.Mutex
	tps []string
}

func failOnceServer(t *testing.T) *onceFailing {
	s := &onceFailing{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.tps = append(s.tps, r.Header.Get("Traceparent"))
		first := len(s.tps) == 1
		s.mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

// traceparents returns the traceparent of each request served, in order.
func (s *onceFailing) traceparents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tps)
}
