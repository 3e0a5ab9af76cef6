package grpcmw_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// streamSvc is a loopback gRPC service with what the clustertest nodes do
// not serve: Upload is client-streaming (it counts the requests and answers
// once), Hang is server-streaming and never sends, telling hung when it has
// started, and Block is unary and answers once release is closed, telling
// entered when it has started.
type streamSvc struct {
	hung     chan struct{}
	entered  chan struct{}
	release  chan struct{}
	served   atomic.Int32 // Block calls
	flaky    atomic.Int32 // Flaky calls
	slow     atomic.Int32 // Hang calls with Count -2
	deadline atomic.Int32 // Hang calls with Count -4
	drip     chan struct{}
}

const flakyMethod = "/rampart.test.Streams/Flaky"

var flakyDesc = &grpc.StreamDesc{StreamName: "Flaky", ServerStreams: true}

// flaky is server-streaming: its first call fails with Unavailable before
// any header (a trailers-only status), later ones send one reply.
func (s *streamSvc) flakyStream(_ any, ss grpc.ServerStream) error {
	var req pb.StreamRequest
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	if s.flaky.Add(1) == 1 {
		return status.Error(codes.Unavailable, "not yet")
	}
	return ss.SendMsg(&pb.StreamReply{Seq: 7})
}

const blockMethod = "/rampart.test.Streams/Block"

func (s *streamSvc) block(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var req pb.EchoRequest
	if err := dec(&req); err != nil {
		return nil, err
	}
	s.served.Add(1)
	s.entered <- struct{}{}
	select {
	case <-s.release:
		return &pb.EchoReply{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

const (
	uploadMethod = "/rampart.test.Streams/Upload"
	hangMethod   = "/rampart.test.Streams/Hang"
)

var (
	uploadDesc = &grpc.StreamDesc{StreamName: "Upload", ClientStreams: true}
	hangDesc   = &grpc.StreamDesc{StreamName: "Hang", ServerStreams: true}
)

func (s *streamSvc) upload(_ any, ss grpc.ServerStream) error {
	var n int64
	for {
		var req pb.EchoRequest
		err := ss.RecvMsg(&req)
		if err == io.EOF {
			return ss.SendMsg(&pb.EchoReply{Size: n})
		}
		if err != nil {
			return err
		}
		n++
	}
}

func (s *streamSvc) hang(_ any, ss grpc.ServerStream) error {
	var req pb.StreamRequest
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	if req.Count == -1 && s.flaky.Add(1) == 1 { // fail the first call, then hang
		return status.Error(codes.Unavailable, "not yet")
	}
	if req.Count == -2 && s.slow.Add(1) > 1 { // hang on the first call only
		return ss.SendMsg(&pb.StreamReply{Seq: 1})
	}
	if req.Count == -4 { // the server's own deadline ran out
		s.deadline.Add(1)
		return status.Error(codes.DeadlineExceeded, "downstream too slow")
	}
	if req.Count == -3 { // one message, another once drip is told
		if err := ss.SendMsg(&pb.StreamReply{Seq: 1}); err != nil {
			return err
		}
		select {
		case <-s.drip:
			return ss.SendMsg(&pb.StreamReply{Seq: 2})
		case <-ss.Context().Done():
			return status.FromContextError(ss.Context().Err()).Err()
		}
	}
	s.hung <- struct{}{}
	<-ss.Context().Done()
	return status.FromContextError(ss.Context().Err()).Err()
}

// streamServer serves streamSvc on loopback and returns a ClientConn to it
// with the given stream interceptors, outermost first.
func streamServer(t *testing.T, ics ...grpc.StreamClientInterceptor) (*grpc.ClientConn, *streamSvc) {
	t.Helper()
	return testServer(t, grpc.WithChainStreamInterceptor(ics...))
}

// testServer serves streamSvc on loopback and returns a ClientConn to it
// with the given dial options. Block calls still held are released at the
// end of the test.
func testServer(t *testing.T, opts ...grpc.DialOption) (*grpc.ClientConn, *streamSvc) {
	t.Helper()
	svc := &streamSvc{hung: make(chan struct{}, 64), entered: make(chan struct{}, 64), release: make(chan struct{}), drip: make(chan struct{})}
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "rampart.test.Streams",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Block", Handler: svc.block}},
		Streams: []grpc.StreamDesc{
			{StreamName: "Upload", ClientStreams: true, Handler: svc.upload},
			{StreamName: "Hang", ServerStreams: true, Handler: svc.hang},
			{StreamName: "Flaky", ServerStreams: true, Handler: svc.flakyStream},
		},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(),
		append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(svc.release) })
		_ = conn.Close()
		srv.Stop()
		<-done
	})
	return conn, svc
}

// sampleAll is a tracer that exports every call it ends, into the returned
// exporter, whose exported channel ticks at each export.
func sampleAll(t *testing.T) (*sampling.Tracer, *notifyExporter) {
	exp := &notifyExporter{InMemoryExporter: tracetest.NewInMemoryExporter(), exported: make(chan struct{}, 1)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(1),
		sampling.WithPropagator(propagation.TraceContext{})), exp
}

// notifyExporter is an in-memory exporter that tells when it exported.
type notifyExporter struct {
	*tracetest.InMemoryExporter
	exported chan struct{}
}

func (e *notifyExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.InMemoryExporter.ExportSpans(ctx, spans)
	select {
	case e.exported <- struct{}{}:
	default:
	}
	return err
}

// waitSpans waits, up to 10 s, until the exporter has n logical spans of
// method, and returns how many it has.
func (e *notifyExporter) waitSpans(method string, n int) int {
	timeout := time.After(10 * time.Second)
	for {
		if got := logicalSpans(e, method); got >= n {
			return got
		}
		select {
		case <-e.exported:
		case <-timeout:
			return logicalSpans(e, method)
		}
	}
}

// logicalSpans counts the exported logical spans of method's calls: those
// whose parent is not an exported span (an attempt's parent is its call's).
func logicalSpans(exp *notifyExporter, method string) int {
	spans := exp.GetSpans()
	ids := make(map[trace.SpanID]bool, len(spans))
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	n := 0
	for _, s := range spans {
		if s.Name == method[1:] && !ids[s.Parent.SpanID()] {
			n++
		}
	}
	return n
}

// A client-streaming call ends with its one reply: gRPC reads the end of
// the stream itself, and the caller never calls RecvMsg again. Its bulkhead
// slot is free and its trace is exported then, on a context that never
// ends.
func TestClientStreamEndsAtReply(t *testing.T) {
	g, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr, exp := sampleAll(t)
	conn, _ := streamServer(t, grpcmw.StreamTracing(tr), grpcmw.StreamBulkhead(g), grpcmw.StreamAttemptTracing())
	ctx := context.Background() // a caller that never cancels
	for call := 1; call <= 3; call++ {
		cs, err := conn.NewStream(ctx, uploadDesc, uploadMethod)
		if err != nil {
			t.Fatalf("call %d: %v", call, err)
		}
		for range 3 {
			if err := cs.SendMsg(&pb.EchoRequest{Payload: []byte("x")}); err != nil {
				t.Fatalf("call %d: send: %v", call, err)
			}
		}
		if err := cs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		var reply pb.EchoReply
		if err := cs.RecvMsg(&reply); err != nil || reply.Size != 3 {
			t.Fatalf("call %d: reply %v, %v; want size 3", call, &reply, err)
		}
		if n := g.Get(conn.Target()).InFlight(); n != 0 {
			t.Fatalf("call %d: %d bulkhead slots still held after the reply", call, n)
		}
		if n := logicalSpans(exp, uploadMethod); n != call {
			t.Fatalf("after call %d: %d calls exported, want %d", call, n, call)
		}
	}
}

// A stream that gRPC finishes itself, because its ClientConn closes while
// no call of the caller's is in progress, frees its bulkhead slot and its
// breaker's half-open probe (neutral). Groups outlive a ClientConn: they
// used to keep both for good, and the breaker refused every later probe.
func TestStreamEndsWhenClientConnCloses(t *testing.T) {
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Millisecond, TimeoutJitter: -1}, 0)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, svc := streamServer(t, grpcmw.StreamBreaker(bg), grpcmw.StreamBulkhead(hg))
	b := bg.Get(conn.Target())
	tk, err := b.Admit()
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(breaker.Failure) // open; half-open a millisecond later
	for b.State() != breaker.StateHalfOpen {
		time.Sleep(time.Millisecond)
	}
	_ = openServerStream(t, conn, context.Background(), hangDesc, hangMethod, 1) // the probe
	<-svc.hung
	if _, err := b.Admit(); err == nil {
		t.Fatal("a second probe was admitted while the stream holds the only one")
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); hg.Get(conn.Target()).InFlight() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the bulkhead slot is still held 10s after the ClientConn closed")
		}
	}
	tk, err = b.Admit()
	if err != nil {
		t.Fatalf("the breaker still refuses a probe after the ClientConn closed: %v", err)
	}
	tk.Done(breaker.Neutral)
}

// A stream that ends before any header, read with Header first: gRPC's
// Header returns neither header nor error then, and finishes the stream.
// The stream ends with the real status (a failure for the breaker), also
// for a caller that stops after Header on a context that never ends.
func TestStreamEndedBeforeHeader(t *testing.T) {
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, 0)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := streamServer(t, grpcmw.StreamBreaker(bg), grpcmw.StreamBulkhead(hg))
	cs := openServerStream(t, conn, context.Background(), flakyDesc, flakyMethod, 1) // Unavailable, no header
	if md, err := cs.Header(); md != nil || err != nil {
		t.Fatalf("Header = %v, %v; want gRPC's nil, nil for a stream over before its header", md, err)
	}
	// The caller stops here.
	if got := bg.Get(conn.Target()).State(); got != breaker.StateOpen {
		t.Errorf("breaker %v after an Unavailable stream, want open (a failure)", got)
	}
	if n := hg.Get(conn.Target()).InFlight(); n != 0 {
		t.Errorf("%d bulkhead slots held after the stream ended", n)
	}
}

// failOnceCreds fails the first stream open with Unavailable, then lets
// every open through: a real gRPC open failure the retry step retries.
type failOnceCreds struct{ n atomic.Int32 }

func (c *failOnceCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if c.n.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "credentials not ready")
	}
	return nil, nil
}

func (c *failOnceCreds) RequireTransportSecurity() bool { return false }

// Stream wrappers above the retry step (not the preset's order, but
// allowed) see the finishing of every attempt's stream: an attempt whose
// open failed and was retried must not end them. The bulkhead keeps its
// slot while the retried stream is open, and the breaker records the call's
// success, not the first attempt's failure.
func TestStreamWrappersAboveRetry(t *testing.T) {
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, 0)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := streamServer(t, grpcmw.StreamBreaker(bg), grpcmw.StreamBulkhead(hg),
		grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})))
	cs, err := conn.NewStream(t.Context(), uploadDesc, uploadMethod, grpc.PerRPCCredentials(&failOnceCreds{}))
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	if n := hg.Get(conn.Target()).InFlight(); n != 1 {
		t.Errorf("%d bulkhead slots held while the stream is open, want 1", n)
	}
	if err := cs.SendMsg(&pb.EchoRequest{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var reply pb.EchoReply
	if err := cs.RecvMsg(&reply); err != nil || reply.Size != 1 {
		t.Fatalf("reply %v, %v; want size 1", &reply, err)
	}
	if got := bg.Get(conn.Target()).State(); got != breaker.StateClosed {
		t.Errorf("breaker %v after a call that succeeded, want closed", got)
	}
	if n := hg.Get(conn.Target()).InFlight(); n != 0 {
		t.Errorf("%d bulkhead slots held after the reply", n)
	}
}

// The stream wrappers leave gRPC's own stream retries alone (they used to
// commit every stream at once, by asking for its context): with a retry
// policy in the service config, the flaky stream's first Unavailable is
// retried by gRPC beneath them.
func TestStreamWrappersKeepGRPCRetries(t *testing.T) {
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := testServer(t, grpc.WithChainStreamInterceptor(grpcmw.StreamBulkhead(hg)),
		grpc.WithDefaultServiceConfig(`{"methodConfig":[{"name":[{"service":"rampart.test.Streams"}],
		  "retryPolicy":{"maxAttempts":3,"initialBackoff":"0.01s","maxBackoff":"0.01s","backoffMultiplier":1,"retryableStatusCodes":["UNAVAILABLE"]}}]}`))
	cs := openServerStream(t, conn, t.Context(), flakyDesc, flakyMethod, 1)
	var reply pb.StreamReply
	if err := cs.RecvMsg(&reply); err != nil || reply.Seq != 7 {
		t.Fatalf("RecvMsg = %v, %v; want gRPC's retry to get the reply", &reply, err)
	}
}

// A traced server-streaming call whose Header fails ends there, on a
// context that never ends: gRPC lets the caller stop at a Header error, so
// the call is exported then, as an error.
func TestStreamHeaderErrorEndsCall(t *testing.T) {
	tr, exp := sampleAll(t)
	conn, _ := streamServer(t, grpcmw.StreamTracing(tr),
		grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 1})), grpcmw.StreamAttemptTracing())
	cs := openServerStream(t, conn, context.Background(), hangDesc, hangMethod, -4) // the server fails it
	if _, err := cs.Header(); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Header: %v, want DeadlineExceeded", err)
	}
	// The attempt's span is exported as the attempt ends; wait for the
	// call's, its parent.
	timeout := time.After(10 * time.Second)
	for {
		spans := exp.GetSpans()
		if len(spans) == 2 {
			call, attempt := spans[0], spans[1]
			if call.Parent.SpanID() == attempt.SpanContext.SpanID() {
				call, attempt = attempt, call
			}
			if attempt.Parent.SpanID() != call.SpanContext.SpanID() {
				t.Fatalf("spans %v and %v: want an attempt and its call", attempt.Name, call.Name)
			}
			if call.Status.Code != otelcodes.Error || attempt.Status.Code != otelcodes.Error {
				t.Errorf("statuses %v, %v; want Error", call.Status.Code, attempt.Status.Code)
			}
			return
		}
		select {
		case <-exp.exported:
		case <-timeout:
			t.Fatalf("%d spans exported after the Header error, want the attempt's and the call's", len(spans))
		}
	}
}

// A traced server-streaming call whose caller gives up while it waits for
// the first message: every layer ends on its own goroutine (the caller's
// RecvMsg, each layer's context.AfterFunc) at the same time. The call is
// ended and exported exactly once, and (under -race) no two of them touch
// the call together.
func TestStreamCancelWhileWaiting(t *testing.T) {
	tr, exp := sampleAll(t)
	conn, svc := streamServer(t, grpcmw.StreamTracing(tr),
		grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 3})), grpcmw.StreamAttemptTracing())
	const calls = 20
	var wg sync.WaitGroup
	for range calls {
		ctx, cancel := context.WithCancel(context.Background())
		cs := openServerStream(t, conn, ctx, hangDesc, hangMethod, 1)
		got := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got <- cs.RecvMsg(new(pb.StreamReply))
		}()
		<-svc.hung // the stream is open and its first RecvMsg waits
		cancel()
		if err := <-got; status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
			t.Fatalf("RecvMsg after cancel: %v, want Canceled", err)
		}
	}
	wg.Wait()
	// The AfterFunc goroutines may still be ending the last calls.
	if n := exp.waitSpans(hangMethod, calls); n != calls {
		t.Fatalf("%d calls exported, want each of %d exactly once", n, calls)
	}
}

// An attempt whose timeout ends its wait in its node's bulkhead queue never
// reached the node: the node's breaker counts nothing, and the error
// carries DeadlineExceeded and matches bulkhead.ErrFull, through the
// standalone interceptors and through the preset.
func TestQueueTimeoutNotANodeFailure(t *testing.T) {
	for _, preset := range []bool{false, true} {
		t.Run(map[bool]string{false: "chained", true: "preset"}[preset], func(t *testing.T) {
			bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 2, Timeout: time.Hour}, 0)
			hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
			if err != nil {
				t.Fatal(err)
			}
			p := retry.NewPolicy(retry.Policy{MaxAttempts: 1, AttemptTimeout: 20 * time.Millisecond})
			ics := []grpc.UnaryClientInterceptor{grpcmw.UnaryRetry(p), grpcmw.UnaryBreaker(bg), grpcmw.UnaryBulkhead(hg)}
			if preset {
				ics = []grpc.UnaryClientInterceptor{grpcmw.PresetUnary(grpcmw.WithRetry(p), grpcmw.WithBreakers(bg), grpcmw.WithBulkheads(hg))}
			}
			conn, svc := testServer(t, grpc.WithChainUnaryInterceptor(ics...))
			// The holder takes the node's one slot, with no attempt timeout.
			slot, err := hg.Get(conn.Target()).Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				err := conn.Invoke(context.Background(), blockMethod, &pb.EchoRequest{}, new(pb.EchoReply))
				if !errors.Is(err, bulkhead.ErrFull) || status.Code(err) != codes.DeadlineExceeded {
					t.Fatalf("call %d: err = %v, want DeadlineExceeded matching bulkhead.ErrFull", i, err)
				}
			}
			b := bg.Get(conn.Target())
			if st, c := b.State(), b.Counts(); st != breaker.StateClosed || c.TotalFailures != 0 {
				t.Errorf("node breaker %v with %d failures after queue timeouts, want closed with none", st, c.TotalFailures)
			}
			slot.Release()
			if n := svc.served.Load(); n != 0 {
				t.Errorf("server saw %d calls, want none", n)
			}
		})
	}
}

// A server-streaming caller that asks for the header first still gets the
// retry: gRPC's Header hides a failure that came before any header, so the
// attempt's status is read before the stream is committed to it.
func TestStreamHeaderFirstRetried(t *testing.T) {
	conn, svc := streamServer(t, grpcmw.StreamRetry(fastRetry))
	cs := openServerStream(t, conn, t.Context(), flakyDesc, flakyMethod, 1)
	if _, err := cs.Header(); err != nil {
		t.Fatalf("Header: %v", err)
	}
	var reply pb.StreamReply
	if err := cs.RecvMsg(&reply); err != nil || reply.Seq != 7 {
		t.Fatalf("RecvMsg after Header: %v, %v; want the second attempt's reply", &reply, err)
	}
	if err := cs.RecvMsg(&reply); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if n := svc.flaky.Load(); n != 2 {
		t.Errorf("%d attempts reached the server, want 2", n)
	}
}

// While a server-streaming call waits for its first message, its first
// attempt failed, another goroutine may ask for its context (a watchdog
// deciding to cancel it) without waiting too, and gets a live one.
func TestStreamContextWhileWaiting(t *testing.T) {
	conn, svc := streamServer(t, grpcmw.StreamRetry(fastRetry))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := openServerStream(t, conn, ctx, hangDesc, hangMethod, -1)
	got := make(chan error, 1)
	go func() { got <- cs.RecvMsg(new(pb.StreamReply)) }()
	<-svc.hung // the second attempt waits for the first message
	if n := svc.flaky.Load(); n != 2 {
		t.Fatalf("%d attempts, want the second one waiting", n)
	}
	watchdog := make(chan context.Context, 1)
	go func() { watchdog <- cs.Context() }()
	select {
	case sctx := <-watchdog:
		if sctx.Err() != nil {
			t.Errorf("stream context already done: %v", sctx.Err())
		}
	case <-time.After(5 * time.Second):
		t.Error("Context blocked while the stream waited for its first message")
	}
	cancel()
	if err := <-got; status.Code(err) != codes.Canceled {
		t.Errorf("RecvMsg after cancel: %v, want Canceled", err)
	}
}

// An invoker that panics (and a caller that recovers) leaves no breaker
// outcome pending and no bulkhead slot held, chained or in the preset.
func TestPanicBelowReleases(t *testing.T) {
	panicking := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		panic("invoker bug")
	}
	for _, preset := range []bool{false, true} {
		bg := breaker.NewGroup(breaker.Settings{}, 0)
		hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		ics := []grpc.UnaryClientInterceptor{grpcmw.UnaryBreaker(bg), grpcmw.UnaryBulkhead(hg)}
		if preset {
			ics = []grpc.UnaryClientInterceptor{grpcmw.PresetUnary(grpcmw.WithoutRetry(), grpcmw.WithBreakers(bg), grpcmw.WithBulkheads(hg))}
		}
		conn, _ := testServer(t, grpc.WithChainUnaryInterceptor(ics...))
		inv := chainUnary(ics, panicking)
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			_ = inv(context.Background(), blockMethod, nil, nil, conn)
		}()
		if n := hg.Get(conn.Target()).InFlight(); n != 0 {
			t.Errorf("preset %v: %d bulkhead slots held after the panic", preset, n)
		}
		if c := bg.Get(conn.Target()).Counts(); c.TotalNeutral != 1 {
			t.Errorf("preset %v: breaker counts %+v after the panic, want one neutral outcome", preset, c)
		}
	}
}

// openServerStream opens a server-streaming call of method on conn and
// sends its one request, with count.
func openServerStream(t *testing.T, conn *grpc.ClientConn, ctx context.Context, desc *grpc.StreamDesc, method string, count int32) grpc.ClientStream {
	t.Helper()
	cs, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&pb.StreamRequest{Count: count}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return cs
}

// A server stream's attempt that gets no first message within the attempt
// timeout is cancelled and retried, and counts against its node's breaker;
// once a stream has its first message, the timeout no longer applies.
func TestStreamAttemptTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond // far above a loopback answer, even under -race on 2 loaded cores
	p := retry.NewPolicy(retry.Policy{MaxAttempts: 3, AttemptTimeout: timeout, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 5}, 0)
	conn, svc := streamServer(t, grpcmw.StreamRetry(p), grpcmw.StreamBreaker(bg))

	// The first attempt hangs: the second one answers.
	cs := openServerStream(t, conn, t.Context(), hangDesc, hangMethod, -2)
	var reply pb.StreamReply
	if err := cs.RecvMsg(&reply); err != nil || reply.Seq != 1 {
		t.Fatalf("RecvMsg: %v, %v; want the second attempt's reply", &reply, err)
	}
	<-svc.hung // the first attempt had reached the server
	if err := cs.RecvMsg(&reply); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if n := svc.slow.Load(); n != 2 {
		t.Errorf("%d attempts reached the server, want 2", n)
	}
	if c := bg.Get(conn.Target()).Counts(); c.TotalFailures != 1 || c.TotalSuccesses != 1 {
		t.Errorf("breaker counts %+v, want the timed-out attempt a failure and the second a success", c)
	}

	// A stream that has its first message outlives the attempt timeout.
	cs = openServerStream(t, conn, t.Context(), hangDesc, hangMethod, -3)
	if err := cs.RecvMsg(&reply); err != nil || reply.Seq != 1 {
		t.Fatalf("first message: %v, %v", &reply, err)
	}
	<-time.After(3 * timeout) // past the attempt timeout
	svc.drip <- struct{}{}
	if err := cs.RecvMsg(&reply); err != nil || reply.Seq != 2 {
		t.Fatalf("second message after the attempt timeout: %v, %v", &reply, err)
	}
	if err := cs.RecvMsg(&reply); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}

	// Every attempt hangs: the call fails with DeadlineExceeded.
	cs = openServerStream(t, conn, t.Context(), hangDesc, hangMethod, 1)
	err := cs.RecvMsg(&reply)
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, retry.ErrExhausted) {
		t.Fatalf("every attempt hung: %v, want DeadlineExceeded after exhausted attempts", err)
	}

	// The server's own DeadlineExceeded, well within the attempt timeout,
	// is its answer: not retried.
	cs = openServerStream(t, conn, t.Context(), hangDesc, hangMethod, -4)
	if err := cs.RecvMsg(&reply); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("server's own deadline: %v, want DeadlineExceeded", err)
	}
	if n := svc.deadline.Load(); n != 1 {
		t.Errorf("server's own DeadlineExceeded retried: %d attempts", n)
	}
}

// A server stream's attempt whose timeout ends while it waits for a slot of
// its node's bulkhead fails with DeadlineExceeded, not Canceled: the
// caller's context is alive.
func TestStreamAttemptTimeoutWhileQueued(t *testing.T) {
	p := retry.NewPolicy(retry.Policy{MaxAttempts: 2, AttemptTimeout: 20 * time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := streamServer(t, grpcmw.StreamRetry(p), grpcmw.StreamBulkhead(hg))
	slot, err := hg.Get(conn.Target()).Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	cs := openServerStream(t, conn, t.Context(), hangDesc, hangMethod, 1)
	err = cs.RecvMsg(new(pb.StreamReply))
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("attempts timed out in the queue: %v, want DeadlineExceeded matching bulkhead.ErrFull", err)
	}
}
