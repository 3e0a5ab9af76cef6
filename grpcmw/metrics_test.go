package grpcmw_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rampart-go/rampart/breaker"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// TestPresetRecordsBreakerTransitions checks that a preset with a tracer
// records the breaker transitions of its nodes in the tracer's metrics,
// while the user's own OnStateChange still runs.
func TestPresetRecordsBreakerTransitions(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tracer := sampling.NewTracer(sampling.WithMeterProvider(mp), sampling.WithRatio(0))

	opened := make(chan string, 8)
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute,
		OnStateChange: func(ev breaker.StateChange) {
			if ev.To == breaker.StateOpen {
				opened <- ev.Name
			}
		}}, 0)
	e := newEnv(t, nil, grpcmw.WithBreakers(bg), grpcmw.WithTracer(tracer),
		grpcmw.WithRetry(&retry.Policy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	m := e.w.Current()
	key := keyFor(t, m, 1)
	primary := m.Partitions[1].Primary
	e.c.Node(primary).SetErrorRate(1)

	if _, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read()); err != nil {
		t.Fatalf("read should fail over to the replica: %v", err)
	}
	var node string
	select {
	case node = <-opened:
	case <-callCtx(t).Done():
		t.Fatal("the primary's breaker never opened")
	}
	if !strings.HasPrefix(node, primary+":") {
		t.Fatalf("breaker %q opened, want the primary %s", node, primary)
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
				if mt.Name == "rampart.breaker.transitions" {
					for _, dp := range d.DataPoints {
						if v, _ := dp.Attributes.Value(sampling.AttrNode); v.AsString() == node &&
							dp.Attributes.HasValue(sampling.AttrToState) {
							if to, _ := dp.Attributes.Value(sampling.AttrToState); to == attribute.StringValue("open") {
								transitions = dp.Value
							}
						}
					}
				}
			case metricdata.Gauge[int64]:
				if mt.Name == "rampart.breaker.state" {
					for _, dp := range d.DataPoints {
						if v, _ := dp.Attributes.Value(sampling.AttrNode); v.AsString() == node {
							state = dp.Value
						}
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

// TestPresetRecordsFailovers checks that an attempt the failover step sends
// past the primary is counted in rampart.failovers, from the primary to the
// node that took it.
func TestPresetRecordsFailovers(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tracer := sampling.NewTracer(sampling.WithMeterProvider(mp), sampling.WithRatio(0))
	e := newEnv(t, nil, grpcmw.WithTracer(tracer),
		grpcmw.WithRetry(&retry.Policy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	m := e.w.Current()
	key := keyFor(t, m, 1)
	primary, replica := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	e.c.Node(primary).SetErrorRate(1)
	reply, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil || reply.Node != replica {
		t.Fatalf("read should fail over to the replica: %v, %v", reply, err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if d, ok := mt.Data.(metricdata.Sum[int64]); ok && mt.Name == "rampart.failovers" {
				for _, dp := range d.DataPoints {
					from, _ := dp.Attributes.Value(sampling.AttrFromNode)
					to, _ := dp.Attributes.Value(sampling.AttrToNode)
					if strings.HasPrefix(from.AsString(), primary+":") && strings.HasPrefix(to.AsString(), replica+":") {
						got += dp.Value
					}
				}
			}
		}
	}
	if got != 1 {
		t.Fatalf("rampart.failovers{from=%s,to=%s} = %d, want 1", primary, replica, got)
	}
}
