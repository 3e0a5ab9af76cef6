package grpcmw_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// TestPresetRecordsBreakerTransitions checks that a preset with a tracer
// records the breaker transitions of its nodes in the tracer's metrics,
// while the user's own OnStateChange still runs.
func TestPresetRecordsBreakerTransitions(t *testing.T) {
	tracer, reader := metrictest.Tracer(t)

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

	metrictest.BreakerOpened(t, reader, node)
}

// TestPresetRecordsFailovers checks that an attempt the failover step sends
// past the primary is counted in rampart.failovers, from the primary to the
// node that took it.
func TestPresetRecordsFailovers(t *testing.T) {
	tracer, reader := metrictest.Tracer(t)
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

// TestPresetRecordsBudgetRefusals: a retry the budget refuses shows in the
// budget refusals of the tracer's metrics.
func TestPresetRecordsBudgetRefusals(t *testing.T) {
	tracer, reader := metrictest.Tracer(t)
	noRetries := retry.NewBudget(retry.BudgetConfig{Ratio: -1, MinRetries: -1})
	e := newEnv(t, nil, grpcmw.WithTracer(tracer), grpcmw.WithRetry(&retry.Policy{
		MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Budget: noRetries}))
	m := e.w.Current()
	key := keyFor(t, m, 1)
	e.c.Node(m.Partitions[1].Primary).SetErrorRate(1)
	_, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
	if !errors.Is(err, retry.ErrBudget) {
		t.Fatalf("Echo = %v, want the budget's refusal", err)
	}
	if n := metrictest.Total(t, reader, "rampart.retry_budget.refusals", nil); n != 1 {
		t.Errorf("rampart.retry_budget.refusals = %v, want 1", n)
	}
}

// TestRecordsWaits: a call that waited for the rate limiter, and one that
// waited for a bulkhead slot, show in the wait histograms of the tracer's
// metrics; a call that did not wait records nothing there.
func TestRecordsWaits(t *testing.T) {
	tracer, reader := metrictest.Tracer(t)
	lim, err := ratelimit.New(ratelimit.Config{Rate: rate.Every(20 * time.Millisecond), Burst: 1, MaxWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 10 * time.Second}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, svc := testServer(t, grpc.WithChainUnaryInterceptor(
		grpcmw.UnaryTracing(tracer), grpcmw.UnaryRateLimit(lim), grpcmw.UnaryBulkhead(g)))
	call := func(done chan<- error) {
		done <- conn.Invoke(callCtx(t), blockMethod, &pb.EchoRequest{}, new(pb.EchoReply))
	}
	done := make(chan error, 2)
	go call(done)
	<-svc.entered // the first call holds the only slot
	if n := metrictest.Total(t, reader, "rampart.ratelimit.wait.duration", nil); n > 0 {
		t.Errorf("the first call, which had a token, recorded %v rate-limit waits", n)
	}
	lim.Allow() // empty the bucket, however long the first call took
	go call(done)
	for deadline := time.Now().Add(10 * time.Second); g.Get(conn.Target()).Queued() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second call never queued")
		}
	}
	svc.release <- struct{}{}
	<-svc.entered
	svc.release <- struct{}{}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := metrictest.Total(t, reader, "rampart.ratelimit.wait.duration", nil); n != 1 {
		t.Errorf("rate-limit waits recorded: %v, want 1", n)
	}
	if n := metrictest.Total(t, reader, "rampart.bulkhead.wait.duration", metrictest.Has(sampling.AttrNode, conn.Target())); n != 1 {
		t.Errorf("bulkhead waits recorded: %v, want 1 (%v)", n, metrictest.Points(t, reader, "rampart.bulkhead.wait.duration"))
	}
}
