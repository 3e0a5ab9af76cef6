package grpcmw_test

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/clustertest"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// tpEcho is a loopback Echo server that checks the W3C traceparent of every
// call it gets. Requests whose key starts with "fail-" are answered
// Unavailable (every attempt, so the call exhausts its retries).
type tpEcho struct {
	pb.UnimplementedEchoServer
	requests atomic.Int64
	valid    atomic.Int64

	mu        sync.Mutex
	failing   map[string][]string // key → traceparents of its attempts
	sampledOK map[string]bool     // trace IDs of sampled successful calls
}

func (s *tpEcho) Echo(ctx context.Context, req *pb.EchoRequest) (*pb.EchoReply, error) {
	s.requests.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("traceparent")
	ok := len(vals) == 1 && clustertest.ValidTraceparent(vals[0])
	if ok {
		s.valid.Add(1)
	}
	if strings.HasPrefix(req.Key, "fail-") {
		s.mu.Lock()
		s.failing[req.Key] = append(s.failing[req.Key], strings.Join(vals, ","))
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "failing on purpose")
	}
	if ok && strings.HasSuffix(vals[0], "-01") {
		s.mu.Lock()
		s.sampledOK[vals[0][3:35]] = true
		s.mu.Unlock()
	}
	return &pb.EchoReply{}, nil
}

// TestSamplingE2E sends 20,000 successful and 200 failing unary calls through
// the preset's dial options (tracing at 1%, retry, breaker, bulkhead) from 8
// goroutines to a loopback gRPC server, with a synchronous span recorder,
// and checks: every failed call exported with status Error and one span per
// attempt (number, node, outcome, backoff, the span ID the server saw), the
// successful calls exported at about 1%, exactly those the server saw
// propagated as sampled, and a valid traceparent on every attempt.
func TestSamplingE2E(t *testing.T) {
	const (
		nOK, nFail = 20000, 200
		attempts   = 3
		workers    = 8
	)
	srv := &tpEcho{failing: map[string][]string{}, sampledOK: map[string]bool{}}
	addr := serveEcho(t, srv)

	rec := tracetest.NewSpanRecorder() // a synchronous span processor
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(0.01),
		sampling.WithPropagator(propagation.TraceContext{}))

	conn, err := grpc.NewClient(addr, append(grpcmw.DialOptions(
		grpcmw.WithTracer(tr),
		grpcmw.WithRetry(&retry.Policy{MaxAttempts: attempts, BaseDelay: 200 * time.Microsecond, MaxDelay: time.Millisecond, Jitter: -1}),
		grpcmw.WithBreakers(breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1 << 30}, 0)),
	), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	echo := pb.NewEchoClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const calls = nOK + nFail
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		badMu   sync.Mutex
		badCall []string
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= calls {
					return
				}
				failing := i%(calls/nFail) == 0
				key := "ok-" + strconv.Itoa(i)
				if failing {
					key = "fail-" + strconv.Itoa(i)
				}
				_, err := echo.Echo(ctx, &pb.EchoRequest{Key: key})
				if failing != (status.Code(err) == codes.Unavailable) || (!failing && err != nil) {
					badMu.Lock()
					badCall = append(badCall, key+": "+status.Convert(err).Message())
					badMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(badCall) > 0 {
		t.Fatalf("%d calls went wrong, e.g. %v", len(badCall), badCall[0])
	}

	if got, valid := srv.requests.Load(), srv.valid.Load(); got != nOK+nFail*attempts || valid != got {
		t.Errorf("server saw %d attempts (want %d), %d with a valid traceparent", got, nOK+nFail*attempts, valid)
	}
	if len(srv.failing) != nFail {
		t.Fatalf("server saw %d failing calls, want %d", len(srv.failing), nFail)
	}
	failSent := map[string][]string{} // trace ID → span IDs the server saw
	for key, tps := range srv.failing {
		if len(tps) != attempts {
			t.Errorf("%s: %d attempts reached the server, want %d", key, len(tps), attempts)
			continue
		}
		for _, v := range tps {
			if v[3:35] != tps[0][3:35] {
				t.Errorf("%s changed trace ID across attempts: %v", key, tps)
			}
			failSent[v[3:35]] = append(failSent[v[3:35]], v[36:52])
		}
	}

	logical := map[string]sdktrace.ReadOnlySpan{}
	atts := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		tid := s.SpanContext().TraceID().String()
		if _, ok := metrictest.SpanAttr(s, sampling.AttrAttempt); ok {
			atts[tid] = append(atts[tid], s)
		} else {
			logical[tid] = s
		}
	}
	var okExported, failExported int
	for tid, s := range logical {
		sent, failed := failSent[tid]
		if !failed {
			okExported++
			if s.Status().Code == otelcodes.Error || !srv.sampledOK[tid] || len(atts[tid]) != 1 {
				t.Errorf("successful call %s: status %v, propagated sampled %v, %d attempt spans",
					tid, s.Status(), srv.sampledOK[tid], len(atts[tid]))
			}
			continue
		}
		failExported++
		if s.Status().Code != otelcodes.Error {
			t.Errorf("failed call %s exported with status %v", tid, s.Status())
		}
		if len(atts[tid]) != attempts {
			t.Errorf("failed call %s: %d attempt spans, want %d", tid, len(atts[tid]), attempts)
		}
		for _, a := range atts[tid] {
			n, _ := metrictest.SpanAttr(a, sampling.AttrAttempt)
			host, _ := metrictest.SpanAttr(a, sampling.AttrServerAddress)
			port, _ := metrictest.SpanAttr(a, sampling.AttrServerPort)
			out, _ := metrictest.SpanAttr(a, sampling.AttrOutcome)
			backoff, hasBackoff := metrictest.SpanAttr(a, sampling.AttrBackoffMS)
			if host.AsString()+":"+strconv.FormatInt(port.AsInt64(), 10) != addr || out.AsString() != sampling.Failure.String() ||
				a.Status().Code != otelcodes.Error || a.Parent().SpanID() != s.SpanContext().SpanID() ||
				(n.AsInt64() > 1) != (hasBackoff && backoff.AsFloat64() > 0) {
				t.Errorf("failed call %s attempt %d: node %q port %v, outcome %q, status %v, backoff %v",
					tid, n.AsInt64(), host.Emit(), port.Emit(), out.Emit(), a.Status(), backoff.Emit())
			}
			sid := metrictest.PropagatedSpanID(a)
			if !slices.Contains(sent, sid) {
				t.Errorf("failed call %s attempt %d: span ID %s not among those the server saw %v", tid, n.AsInt64(), sid, sent)
			}
		}
	}
	if failExported != nFail {
		t.Errorf("failed calls exported: %d, want all %d", failExported, nFail)
	}
	want := float64(nOK) / 100
	tol := max(0.3*want, 4*math.Sqrt(want))
	if d := float64(okExported) - want; d < -tol || d > tol {
		t.Errorf("successful calls exported: %d, want %.0f ± %.0f", okExported, want, tol)
	}
	if okExported != len(srv.sampledOK) {
		t.Errorf("%d successful calls exported, %d propagated as sampled", okExported, len(srv.sampledOK))
	}
	t.Logf("%d of %d successful calls exported, %d of %d failed; server: %d attempts, %d valid traceparents",
		okExported, nOK, failExported, nFail, srv.requests.Load(), srv.valid.Load())
}

// The preset's bulkhead refuses the first attempt of a read (its node's only
// slot is held) and failover sends the retry to the replica, which answers.
// The call saw a rejection: it is exported, and the refusal counted in
// rampart.bulkhead.rejections (both were recorded only for a call that
// ended with the refusal).
func TestBulkheadRejectedAttemptExported(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	tr := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithMeterProvider(mp),
		sampling.WithRatio(0), sampling.WithPropagator(propagation.TraceContext{}))

	bh, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil, grpcmw.WithTracer(tr), grpcmw.WithBulkheads(bh),
		grpcmw.WithRetry(&retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	m := e.w.Current()
	key := keyFor(t, m, 1)
	primary, replica := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	held, ok := bh.Get(primary + ":" + strconv.Itoa(e.c.GRPCPort())).TryAcquire()
	if !ok {
		t.Fatal("could not hold the primary's slot")
	}
	defer held.Release()

	reply, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil || reply.Node != replica {
		t.Fatalf("read should fail over to the replica: %v, %v", reply, err)
	}
	rej := metrictest.Total(t, rd, "rampart.bulkhead.rejections", nil)
	spans := exp.GetSpans()
	t.Logf("exported spans: %d, rampart.bulkhead.rejections = %v", len(spans), rej)
	if len(spans) == 0 {
		t.Errorf("a call whose attempt the bulkhead refused was not exported")
	}
	if rej != 1 {
		t.Errorf("rampart.bulkhead.rejections = %v, want 1", rej)
	}
}
