package grpcmw_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/bulkhead"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
)

// gRPC lets one goroutine call RecvMsg while another calls SendMsg. On a
// server-streaming call under StreamRetry, a RecvMsg that comes first waits
// for the request without holding the stream: SendMsg gets through and the
// reply arrives, as it does without the interceptor.
func TestStreamRecvBeforeSend(t *testing.T) {
	for _, name := range []string{"plain", "StreamRetry"} {
		t.Run(name, func(t *testing.T) {
			var conn, svc = streamServer(t)
			if name == "StreamRetry" {
				conn, svc = streamServer(t, grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 2})))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // bounds a hang
			defer cancel()
			cs, err := conn.NewStream(ctx, hangDesc, hangMethod)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() { got <- cs.RecvMsg(new(pb.StreamReply)) }()
			time.Sleep(20 * time.Millisecond) // let the receiver start waiting
			if err := cs.SendMsg(&pb.StreamRequest{Count: -3}); err != nil {
				t.Fatalf("SendMsg: %v", err)
			}
			if err := <-got; err != nil {
				t.Fatalf("RecvMsg: %v, want the server's first message", err)
			}
			close(svc.drip)
		})
	}
	// A receiver that waits for a request that never comes stops with its
	// context.
	conn, _ := streamServer(t, grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 2})))
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := conn.NewStream(ctx, hangDesc, hangMethod)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- cs.RecvMsg(new(pb.StreamReply)) }()
	cancel()
	if err := <-got; status.Code(err) != codes.Canceled {
		t.Fatalf("RecvMsg after cancel: %v, want Canceled", err)
	}
}

// A client error from SendMsg (a second message on a server-streaming
// call) aborts the stream, as gRPC's does: later calls report it and run
// no attempt.
func TestStreamSecondSendAborts(t *testing.T) {
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tracer, _ := metrictest.Tracer(t)
	conn, _ := streamServer(t, grpcmw.StreamTracing(tracer),
		grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 1})), grpcmw.StreamBulkhead(hg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := conn.NewStream(ctx, hangDesc, hangMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&pb.StreamRequest{Count: 1}); err != nil {
		t.Fatal(err)
	}
	sendErr := cs.SendMsg(&pb.StreamRequest{Count: 1})
	if status.Code(sendErr) != codes.Internal {
		t.Fatalf("second SendMsg: %v, want Internal", sendErr)
	}
	if err := cs.RecvMsg(new(pb.StreamReply)); status.Code(err) != codes.Internal {
		t.Fatalf("RecvMsg after the SendMsg error: %v, want the same Internal error", err)
	}
	if n := hg.Get(conn.Target()).InFlight(); n != 0 {
		t.Fatalf("an attempt ran after the stream was aborted: %d slots held", n)
	}
}

// A traced server stream whose caller gives up just as its queued attempt
// is handed a bulkhead slot: the call is ended (its sampling context back
// in the pool) by its context's end while the attempt records its wait.
// The wait is then not recorded; before, it read the pooled context (a
// data race, then a nil dereference in the exemplar filter).
func TestStreamWaitAfterCallEnded(t *testing.T) {
	tracer, _ := metrictest.Tracer(t)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := streamServer(t, grpcmw.StreamTracing(tracer),
		grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 1})), grpcmw.StreamBulkhead(hg))
	b := hg.Get(conn.Target())
	for i := 0; i < 100; i++ {
		holder, err := b.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cs := openServerStream(t, conn, ctx, hangDesc, hangMethod, -3)
		got := make(chan error, 1)
		go func() { got <- cs.RecvMsg(new(pb.StreamReply)) }()
		waitFor(t, "the attempt to queue", func() bool { return b.Queued() > 0 })
		holder.Release()
		cancel()
		<-got
		waitFor(t, "the slot to be released", func() bool { return b.InFlight() == 0 })
	}
}

// waitFor polls cond every 50µs for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(50 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
