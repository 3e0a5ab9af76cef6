package grpcmw_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/rampart-go/rampart/breaker"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/internal/metrictest"
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
	got := metrictest.Total(t, reader, "rampart.failovers", func(a attribute.Set) bool {
		from, _ := a.Value(sampling.AttrFromNode)
		to, _ := a.Value(sampling.AttrToNode)
		return strings.HasPrefix(from.AsString(), primary+":") && strings.HasPrefix(to.AsString(), replica+":")
	})
	if got != 1 {
		t.Fatalf("rampart.failovers{from=%s,to=%s} = %v, want 1", primary, replica, got)
	}
}
