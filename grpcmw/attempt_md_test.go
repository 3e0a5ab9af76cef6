package grpcmw_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
)

// downEcho answers every call Unavailable, with a header and a trailer.
type downEcho struct{ pb.UnimplementedEchoServer }

func (downEcho) Echo(ctx context.Context, _ *pb.EchoRequest) (*pb.EchoReply, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("attempt-header", "1"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("attempt-trailer", "1"))
	return nil, status.Error(codes.Unavailable, "down")
}

// When the last attempt never reached the wire (the breaker refused it),
// the caller's grpc.Header, grpc.Trailer and grpc.Peer destinations do not
// hold an earlier, discarded attempt's values: plain gRPC would have left
// them unset.
func TestRetryClearsDiscardedAttemptMetadata(t *testing.T) {
	addr := serveEcho(t, downEcho{})
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute}, 0)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(), grpc.WithChainUnaryInterceptor(
			grpcmw.UnaryRetry(&retry.Policy{MaxAttempts: 2, BaseDelay: time.Millisecond}),
			grpcmw.UnaryBreaker(bg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var hdr, tr metadata.MD
	var p peer.Peer
	_, err = pb.NewEchoClient(conn).Echo(ctx, &pb.EchoRequest{}, grpc.Header(&hdr), grpc.Trailer(&tr), grpc.Peer(&p))
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("err = %v, want the breaker's refusal of attempt 2", err)
	}
	if len(tr) != 0 || len(hdr) != 0 || p.Addr != nil {
		t.Fatalf("call failed with %v, but its header %v, trailer %v and peer %v are attempt 1's", err, hdr, tr, p.Addr)
	}
}

// The same for a stream whose last attempt the breaker refused at opening:
// neither its grpc.Peer destination nor its Trailer is the failed first
// attempt's.
func TestStreamRetryClearsDiscardedAttemptMetadata(t *testing.T) {
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute}, 0)
	conn, _ := streamServer(t,
		grpcmw.StreamRetry(&retry.Policy{MaxAttempts: 2, BaseDelay: time.Millisecond}),
		grpcmw.StreamBreaker(bg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p peer.Peer
	cs, err := conn.NewStream(ctx, hangDesc, hangMethod, grpc.Peer(&p))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&pb.StreamRequest{Count: -1}); err != nil { // Unavailable on the first call
		t.Fatal(err)
	}
	_ = cs.CloseSend()
	var r pb.StreamReply
	if err := cs.RecvMsg(&r); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("RecvMsg = %v, want the breaker's refusal of attempt 2", err)
	}
	if p.Addr != nil || cs.Trailer() != nil {
		t.Fatalf("stream failed at opening, but its peer %v and trailer %v are attempt 1's", p.Addr, cs.Trailer())
	}
}
