package grpcmw_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/bulkhead"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// finishes records the calls of a grpc.OnFinish callback.
type finishes struct {
	mu   sync.Mutex
	errs []error
	ch   chan struct{} // ticks at each call
}

func newFinishes() *finishes { return &finishes{ch: make(chan struct{}, 8)} }

func (f *finishes) opt() grpc.CallOption {
	return grpc.OnFinish(func(err error) {
		f.mu.Lock()
		f.errs = append(f.errs, err)
		f.mu.Unlock()
		f.ch <- struct{}{}
	})
}

// once waits for the first call, then checks there is no other and that
// its status has the code want.
func (f *finishes) once(t *testing.T, want codes.Code) {
	t.Helper()
	select {
	case <-f.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("OnFinish never ran")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) != 1 || status.Code(f.errs[0]) != want {
		t.Fatalf("OnFinish ran %d times with %v; want once, with %v", len(f.errs), f.errs, want)
	}
}

// gRPC runs OnFinish once per call with the call's status. Under the retry
// step, a call whose first attempt failed and was retried runs it once,
// with the call's result, not also with the failed attempt's error.
func TestRetryOnFinishOnce(t *testing.T) {
	fast := retry.NewPolicy(retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})
	t.Run("unary", func(t *testing.T) {
		conn, svc := testServer(t, grpc.WithChainUnaryInterceptor(grpcmw.UnaryRetry(fast)))
		f := newFinishes()
		done := make(chan error, 1)
		go func() {
			done <- conn.Invoke(t.Context(), blockMethod, &pb.EchoRequest{}, new(pb.EchoReply),
				grpc.PerRPCCredentials(&failOnceCreds{}), f.opt()) // the first attempt fails: Unavailable
		}()
		<-svc.entered
		svc.release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatalf("call: %v", err)
		}
		f.once(t, codes.OK)
	})
	t.Run("client stream", func(t *testing.T) {
		conn, _ := streamServer(t, grpcmw.StreamRetry(fast))
		f := newFinishes()
		cs, err := conn.NewStream(t.Context(), uploadDesc, uploadMethod, grpc.PerRPCCredentials(&failOnceCreds{}), f.opt())
		if err != nil {
			t.Fatalf("NewStream: %v", err)
		}
		select {
		case <-f.ch:
			t.Fatal("OnFinish ran for the failed open")
		default:
		}
		if err := cs.SendMsg(&pb.EchoRequest{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := cs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if err := cs.RecvMsg(new(pb.EchoReply)); err != nil {
			t.Fatal(err)
		}
		f.once(t, codes.OK)
	})
	t.Run("server stream", func(t *testing.T) {
		conn, _ := streamServer(t, grpcmw.StreamRetry(fast))
		f := newFinishes()
		cs, err := conn.NewStream(t.Context(), flakyDesc, flakyMethod, f.opt()) // the first attempt fails: Unavailable
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(&pb.StreamRequest{}); err != nil {
			t.Fatal(err)
		}
		if err := cs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		for {
			if err := cs.RecvMsg(new(pb.StreamReply)); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		f.once(t, codes.OK)
	})
	t.Run("server stream given up before it starts", func(t *testing.T) {
		conn, _ := streamServer(t, grpcmw.StreamRetry(fast))
		f := newFinishes()
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := conn.NewStream(ctx, flakyDesc, flakyMethod, f.opt()); err != nil {
			t.Fatal(err)
		}
		cancel()
		f.once(t, codes.Canceled)
	})
	t.Run("every attempt fails", func(t *testing.T) {
		conn, _ := streamServer(t, grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 1})))
		f := newFinishes()
		cs, err := conn.NewStream(t.Context(), flakyDesc, flakyMethod, f.opt()) // its one attempt fails
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(&pb.StreamRequest{}); err != nil {
			t.Fatal(err)
		}
		if err := cs.RecvMsg(new(pb.StreamReply)); status.Code(err) != codes.Unavailable {
			t.Fatalf("RecvMsg: %v, want Unavailable", err)
		}
		f.once(t, codes.Unavailable)
	})
}

// A traced stream that gRPC finishes itself, because its ClientConn closes
// while the caller has no call in progress on a context that never ends,
// ends its logical call: the span is exported and the slots are freed.
func TestTracedStreamEndsWhenClientConnCloses(t *testing.T) {
	for _, name := range []string{"StreamTracing", "preset"} {
		t.Run(name, func(t *testing.T) {
			tr, exp := sampleAll(t)
			hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 4}, 0)
			if err != nil {
				t.Fatal(err)
			}
			var opts []grpc.DialOption
			if name == "preset" {
				opts = grpcmw.DialOptions(grpcmw.WithTracer(tr), grpcmw.WithBulkheads(hg))
			} else {
				opts = []grpc.DialOption{grpc.WithChainStreamInterceptor(grpcmw.StreamTracing(tr), grpcmw.StreamBulkhead(hg))}
			}
			conn, _ := testServer(t, opts...)
			cs := openServerStream(t, conn, context.Background(), hangDesc, hangMethod, -3) // one message, then waits
			if err := cs.RecvMsg(new(pb.StreamReply)); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
			waitCallSpan(t, exp)
			// Each wrapper learns of the end from its own callback.
			waitFor(t, "the bulkhead slot to be freed", func() bool { return hg.Get(conn.Target()).InFlight() == 0 })
		})
	}
}

// A traced stream that ended before its header, read with Header first
// (gRPC's Header then returns neither header nor error), ends its logical
// call there too, for a caller that stops after Header.
func TestTracedStreamEndedBeforeHeader(t *testing.T) {
	tr, exp := sampleAll(t)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := streamServer(t, grpcmw.StreamTracing(tr), grpcmw.StreamBulkhead(hg))
	cs := openServerStream(t, conn, context.Background(), flakyDesc, flakyMethod, 1) // Unavailable, no header
	if md, err := cs.Header(); md != nil || err != nil {
		t.Fatalf("Header = %v, %v; want gRPC's nil, nil", md, err)
	}
	waitCallSpan(t, exp)
}

// waitCallSpan waits, up to 5s, for a logical call's span (the one with the
// rampart.attempts attribute) to be exported.
func waitCallSpan(t *testing.T, exp *notifyExporter) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		for _, s := range exp.GetSpans() {
			for _, kv := range s.Attributes {
				if kv.Key == sampling.AttrAttempts {
					return
				}
			}
		}
		select {
		case <-exp.exported:
		case <-timeout:
			t.Fatalf("no call span exported (%d spans)", len(exp.GetSpans()))
		}
	}
}

const eagerMethod = "/rampart.review.Eager/Hdr"

var eagerDesc = &grpc.StreamDesc{StreamName: "Hdr", ServerStreams: true}

// eagerServer serves a server-streaming method whose handler sends its
// header before it reads the request (as a server interceptor that sets
// response metadata up front does), then answers the request once.
func eagerServer(t *testing.T, ics ...grpc.StreamClientInterceptor) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "rampart.review.Eager",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Hdr", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			if err := ss.SendHeader(metadata.Pairs("eager", "yes")); err != nil {
				return err
			}
			var req pb.StreamRequest
			if err := ss.RecvMsg(&req); err != nil {
				return err
			}
			return ss.SendMsg(&pb.StreamReply{Seq: req.Count})
		}}},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithChainStreamInterceptor(ics...),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop(); <-done })
	return conn
}

// gRPC lets a caller read a server stream's header before it sends the
// request, from the same goroutine, when the server sends its header
// first: Header under StreamRetry does not wait for the request.
func TestStreamHeaderBeforeSend(t *testing.T) {
	for _, name := range []string{"plain", "StreamRetry"} {
		t.Run(name, func(t *testing.T) {
			var ics []grpc.StreamClientInterceptor
			if name == "StreamRetry" {
				ics = append(ics, grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 2})))
			}
			conn := eagerServer(t, ics...)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // bounds the hang
			defer cancel()
			cs, err := conn.NewStream(ctx, eagerDesc, eagerMethod)
			if err != nil {
				t.Fatal(err)
			}
			md, err := cs.Header()
			if err != nil || len(md.Get("eager")) != 1 {
				t.Fatalf("Header before SendMsg = %v, %v; want the server's header", md, err)
			}
			if err := cs.SendMsg(&pb.StreamRequest{Count: 5}); err != nil {
				t.Fatalf("SendMsg: %v", err)
			}
			if err := cs.CloseSend(); err != nil {
				t.Fatal(err)
			}
			var reply pb.StreamReply
			if err := cs.RecvMsg(&reply); err != nil || reply.Seq != 5 {
				t.Fatalf("RecvMsg = %v, %v; want seq 5", &reply, err)
			}
		})
	}
}

// gRPC runs OnFinish without holding any lock of the stream, so a callback
// may read the stream (here its header, for a log line). StreamRetry runs
// them once its own lock is released (they ran under it: a deadlock).
func TestOnFinishCallbackReadsStream(t *testing.T) {
	for _, name := range []string{"plain", "StreamRetry"} {
		t.Run(name, func(t *testing.T) {
			conn, _ := streamServer(t, plainOrRetry(name, 1)...)
			onFinish, setStream, finished := headerReadingFinish()
			cs, err := conn.NewStream(context.Background(), flakyDesc, flakyMethod, onFinish) // its first call fails: Unavailable
			if err != nil {
				t.Fatal(err)
			}
			setStream(cs)
			if err := cs.SendMsg(&pb.StreamRequest{}); err != nil {
				t.Fatal(err)
			}
			if err := cs.CloseSend(); err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() { got <- cs.RecvMsg(new(pb.StreamReply)) }()
			select {
			case err := <-got:
				t.Logf("RecvMsg: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("RecvMsg still blocked 5s later: the OnFinish callback's Header waits for the s.mu its own RecvMsg holds (deadlock)")
			}
			select {
			case <-finished:
			case <-time.After(5 * time.Second):
				t.Fatal("OnFinish never returned")
			}
		})
	}
}

// A traced client stream that gRPC finishes itself (its ClientConn
// closing) before its first response: its attempt is still open. gRPC runs
// StreamTracing's finishing callback before StreamAttemptTracing's; the
// call's end ends its open attempt with the attempt's own outcome (neutral:
// Canceled with the caller alive), not as the failure the sampling call's
// End would make of it.
func TestAttemptOutcomeAtClientConnClose(t *testing.T) {
	tr, exp := sampleAll(t)
	conn, _ := streamServer(t, grpcmw.StreamTracing(tr), grpcmw.StreamAttemptTracing())
	cs, err := conn.NewStream(context.Background(), uploadDesc, uploadMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&pb.EchoRequest{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitCallSpan(t, exp)
	for _, s := range exp.GetSpans() {
		isCall := false
		var outcome string
		for _, kv := range s.Attributes {
			if kv.Key == sampling.AttrAttempts {
				isCall = true
			}
			if kv.Key == sampling.AttrOutcome {
				outcome = kv.Value.AsString()
			}
		}
		if !isCall {
			t.Logf("attempt span outcome %q", outcome)
			if outcome != sampling.Neutral.String() {
				t.Errorf("attempt outcome %q after the ClientConn closed, want %q (what StreamAttemptTracing records for a Canceled attempt with a live caller)", outcome, sampling.Neutral.String())
			}
		}
	}
}

// headerReadingFinish is an OnFinish option whose callback reads the
// header of the stream given to set (as a log line might), then reports
// the status on finished.
func headerReadingFinish() (opt grpc.CallOption, set func(grpc.ClientStream), finished <-chan error) {
	var csv atomic.Value
	ch := make(chan error, 1)
	opt = grpc.OnFinish(func(err error) {
		if cs, ok := csv.Load().(grpc.ClientStream); ok {
			_, _ = cs.Header()
		}
		ch <- err
	})
	return opt, func(cs grpc.ClientStream) { csv.Store(cs) }, ch
}

// plainOrRetry is no interceptor for "plain", StreamRetry with attempts
// for "StreamRetry": a test's two runs, without and with rampart.
func plainOrRetry(name string, attempts int) []grpc.StreamClientInterceptor {
	if name == "StreamRetry" {
		return []grpc.StreamClientInterceptor{grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: attempts}))}
	}
	return nil
}
