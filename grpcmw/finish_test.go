package grpcmw_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
