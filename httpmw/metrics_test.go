package httpmw_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// TestPresetRecordsBreakerTransitions checks that a preset with a tracer
// records its breakers' transitions and state in the tracer's metrics, while
// the user's own OnStateChange still runs.
func TestPresetRecordsBreakerTransitions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	node := srv.Listener.Addr().String()

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	tracer := sampling.NewTracer(sampling.WithMeterProvider(mp), sampling.WithRatio(0))

	opened := 0
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute,
		OnStateChange: func(ev breaker.StateChange) {
			if ev.To == breaker.StateOpen {
				opened++
			}
		}}, 0)
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.New(transport, httpmw.WithBreakers(bg), httpmw.WithTracer(tracer),
		httpmw.WithRetry(&retry.Policy{MaxAttempts: 1}))}
	u, _ := url.Parse(srv.URL)
	resp, err := client.Get(u.String())
	if err == nil {
		resp.Body.Close()
	}
	if opened != 1 || bg.Get(node).State() != breaker.StateOpen {
		t.Fatalf("breaker of %s: opened %d times, state %v; want opened once", node, opened, bg.Get(node).State())
	}

	transitions := metrictest.Total(t, reader, "rampart.breaker.transitions",
		metrictest.All(metrictest.Has(sampling.AttrNode, node), metrictest.Has(sampling.AttrToState, "open")))
	state := metrictest.Total(t, reader, "rampart.breaker.state", metrictest.Has(sampling.AttrNode, node))
	if transitions != 1 {
		t.Errorf("rampart.breaker.transitions{node=%s,to=open} = %v, want 1", node, transitions)
	}
	if state != sampling.BreakerOpen {
		t.Errorf("rampart.breaker.state{node=%s} = %v, want %d (open)", node, state, sampling.BreakerOpen)
	}
}
