package httpmw_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/httpmw"
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

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var transitions, state int64 = -1, -1
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				if mt.Name != "rampart.breaker.transitions" {
					continue
				}
				for _, dp := range d.DataPoints {
					n, _ := dp.Attributes.Value(sampling.AttrNode)
					to, _ := dp.Attributes.Value(sampling.AttrToState)
					if n.AsString() == node && to == attribute.StringValue("open") {
						transitions = dp.Value
					}
				}
			case metricdata.Gauge[int64]:
				if mt.Name != "rampart.breaker.state" {
					continue
				}
				for _, dp := range d.DataPoints {
					if n, _ := dp.Attributes.Value(sampling.AttrNode); n.AsString() == node {
						state = dp.Value
					}
				}
			}
		}
	}
	if transitions != 1 {
		t.Errorf("rampart.breaker.transitions{node=%s,to=open} = %d, want 1", node, transitions)
	}
	if state != sampling.BreakerOpen {
		t.Errorf("rampart.breaker.state{node=%s} = %d, want %d (open)", node, state, sampling.BreakerOpen)
	}
}
