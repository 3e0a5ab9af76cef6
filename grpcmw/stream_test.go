package grpcmw_test

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/grpcmw"
)

// fakeStream is a ClientStream whose RecvMsg returns recvErr.
type fakeStream struct {
	ctx     context.Context
	recvErr error
	sent    int
}

func (s *fakeStream) Header() (metadata.MD, error) { return nil, nil }
func (s *fakeStream) Trailer() metadata.MD         { return nil }
func (s *fakeStream) CloseSend() error             { return nil }
func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SendMsg(any) error            { s.sent++; return nil }
func (s *fakeStream) RecvMsg(any) error            { return s.recvErr }

var bidi = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}

// A bidirectional stream is retried while it cannot be opened, and never
// once it is open.
func TestStreamRetryBidi(t *testing.T) {
	ctx := context.Background()
	opens := 0
	streamer := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		opens++
		if opens == 1 {
			return nil, status.Error(codes.Unavailable, "no connection")
		}
		return &fakeStream{ctx: ctx, recvErr: status.Error(codes.Unavailable, "cut")}, nil
	}
	cs, err := grpcmw.StreamRetry(fastRetry)(ctx, bidi, nil, "/svc/Chat", streamer)
	if err != nil || opens != 2 {
		t.Fatalf("open: %v after %d opens; want a stream after 2", err, opens)
	}
	if err := cs.SendMsg("hello"); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(new(string)); status.Code(err) != codes.Unavailable {
		t.Errorf("RecvMsg: %v, want Unavailable", err)
	}
	if opens != 2 {
		t.Errorf("stream reopened after a message was sent: %d opens", opens)
	}
}

// A stream's bulkhead slot is held until the stream ends, or until its
// context ends when the caller abandons it.
func TestStreamBulkheadRelease(t *testing.T) {
	g, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ic := grpcmw.StreamBulkhead(g)
	ctx, cancel := context.WithCancel(context.Background())
	streamer := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return &fakeStream{ctx: ctx, recvErr: io.EOF}, nil
	}
	cs, err := ic(ctx, bidi, nil, "/svc/Chat", streamer)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Get("").TryAcquire(); ok {
		t.Fatal("slot free while the stream is open")
	}
	if err := cs.RecvMsg(nil); err != io.EOF {
		t.Fatal(err)
	}
	if n := g.Get("").InFlight(); n != 0 {
		t.Fatalf("in flight after the stream ended: %d", n)
	}
	// Abandoned: never read to the end, its context cancelled.
	if _, err := ic(ctx, bidi, nil, "/svc/Chat", streamer); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The release runs in its own goroutine (context.AfterFunc): wait for
	// the slot in the queue.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	p, err := g.Get("").Acquire(wctx)
	if err != nil {
		t.Fatalf("slot never released after the caller cancelled: %v", err)
	}
	p.Release()
}
