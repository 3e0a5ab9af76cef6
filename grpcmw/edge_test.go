package grpcmw_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// A unary call through the preset with three call options (a partition
// key, Read, and a caller's MaxAttempts) allocates no more than one with a
// single option: the options are copied into the call's own buffer.
func TestPresetAllocsThreeCallOptions(t *testing.T) {
	key, r, bg, hg, ok := stubSteps(t)
	inv := chainUnary([]grpc.UnaryClientInterceptor{grpcmw.PresetUnary(
		grpcmw.WithRouter(r), grpcmw.WithBreakers(bg), grpcmw.WithBulkheads(hg))}, ok)
	ctx := context.Background()
	one := []grpc.CallOption{grpcmw.PartitionKey(key)}
	three := []grpc.CallOption{grpcmw.PartitionKey(key), grpcmw.Read(), grpcmw.MaxAttempts(2)}
	a1 := testing.AllocsPerRun(200, func() { _ = inv(ctx, "/echo/Echo", nil, nil, nil, one...) })
	a3 := testing.AllocsPerRun(200, func() { _ = inv(ctx, "/echo/Echo", nil, nil, nil, three...) })
	if a3 > a1 {
		t.Fatalf("allocs/op: %v with 1 call option, %v with 3", a1, a3)
	}
}

// A caller's own breaker step under UnaryTracing (breaker.Group used
// directly, not grpcmw.UnaryBreaker): the call it refuses is recorded as a
// breaker rejection from its final error, as rampart's own steps record
// theirs at the attempt.
func TestCustomBreakerRefusalRecorded(t *testing.T) {
	tr, rd := metrictest.Tracer(t)
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, 0)
	ownBreaker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		tk, err := g.Get("node").Admit()
		if err != nil {
			return err
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
		tk.Done(breaker.Success)
		return err
	}
	if tk, err := g.Get("node").Admit(); err == nil {
		tk.Done(breaker.Failure) // opens it
	}
	inv := chainUnary([]grpc.UnaryClientInterceptor{grpcmw.UnaryTracing(tr), ownBreaker},
		func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil })
	err := inv(context.Background(), "/echo/Echo", nil, nil, nil)
	if err == nil {
		t.Fatal("the open breaker let the call through")
	}
	t.Logf("call error %v; rampart.calls %v", err, metrictest.Points(t, rd, "rampart.calls"))
	if n := metrictest.Total(t, rd, "rampart.calls", metrictest.All(
		metrictest.Has(sampling.AttrOutcome, "rejected"), metrictest.Has(sampling.AttrPolicy, "breaker"))); n != 1 {
		t.Errorf("rampart.calls{outcome=rejected,policy=breaker} = %v, want 1", n)
	}
}

// gRPC finishes a stream inside SendMsg when the SendMsg itself fails (here
// a second request on a server-streaming call: Internal). Its OnFinish
// callbacks then run on that goroutine; a callback that reads the stream's
// header must not deadlock. StreamRetry sends on the committed stream
// without holding its own lock (it held it: a deadlock).
func TestOnFinishFromSendMsg(t *testing.T) {
	for _, name := range []string{"plain", "StreamRetry"} {
		t.Run(name, func(t *testing.T) {
			conn, _ := streamServer(t, plainOrRetry(name, 2)...)
			onFinish, setStream, finished := headerReadingFinish()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cs, err := conn.NewStream(ctx, hangDesc, hangMethod, onFinish)
			if err != nil {
				t.Fatal(err)
			}
			setStream(cs)
			if err := cs.SendMsg(&pb.StreamRequest{Count: -3}); err != nil { // one message, then waits
				t.Fatal(err)
			}
			if err := cs.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if err := cs.RecvMsg(new(pb.StreamReply)); err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() { got <- cs.SendMsg(&pb.StreamRequest{Count: 1}) }() // a client bug gRPC answers with Internal
			select {
			case err := <-got:
				t.Logf("second SendMsg: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("SendMsg still blocked 5s later: the OnFinish callback it ran waits for the stream's lock, which SendMsg holds (deadlock)")
			}
			select {
			case <-finished:
			case <-time.After(5 * time.Second):
				t.Fatal("OnFinish never returned")
			}
		})
	}
}

// gRPC runs OnFinish when a stream's context ends before the caller read
// anything; a callback that reads the stream's header gets gRPC's answer at
// once. Under StreamRetry its Header starts the attempts, which fail on the
// ended context and deliver again: that delivery returns at once (it was a
// re-entrant sync.Once: a deadlock).
func TestOnFinishHeaderAfterCancelBeforeStart(t *testing.T) {
	for _, name := range []string{"plain", "StreamRetry"} {
		t.Run(name, func(t *testing.T) {
			conn, _ := streamServer(t, plainOrRetry(name, 2)...)
			onFinish, setStream, finished := headerReadingFinish()
			ctx, cancel := context.WithCancel(context.Background())
			cs, err := conn.NewStream(ctx, hangDesc, hangMethod, onFinish)
			if err != nil {
				t.Fatal(err)
			}
			setStream(cs)
			if err := cs.SendMsg(&pb.StreamRequest{Count: -3}); err != nil {
				t.Fatal(err)
			}
			if err := cs.CloseSend(); err != nil {
				t.Fatal(err)
			}
			cancel() // the caller gives up before reading
			select {
			case err := <-finished:
				t.Logf("OnFinish: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("OnFinish callback never returned: its Header re-entered the delivery's sync.Once (deadlock)")
			}
		})
	}
}

// gRPC lets one goroutine wait for a server stream's header while another
// sends the request, which the server waits for before it answers. Under
// StreamRetry, a Header that starts the attempts before the request is
// given no longer keeps that SendMsg waiting until the context ends: the
// request goes to the stream the attempt opened. That stream cannot replay
// it, so its failure is the call's (a second attempt would wait for a
// request that never comes).
func TestHeaderWhileAnotherGoroutineSends(t *testing.T) {
	for _, mode := range []string{"plain", "StreamRetry"} {
		for _, tc := range []struct {
			name     string
			count    int32 // the server's plan (streamSvc.hang)
			wantCode codes.Code
		}{
			{"answers", -3, codes.OK},
			{"fails", -1, codes.Unavailable},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				opened := make(chan struct{}, 4)
				signal := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
					cs, err := streamer(ctx, desc, cc, method, opts...)
					opened <- struct{}{}
					return cs, err
				}
				ics := []grpc.StreamClientInterceptor{signal}
				if mode == "StreamRetry" {
					ics = []grpc.StreamClientInterceptor{grpcmw.StreamRetry(retry.NewPolicy(retry.Policy{MaxAttempts: 2})), signal}
				}
				conn, svc := streamServer(t, ics...)
				defer close(svc.drip)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				cs, err := conn.NewStream(ctx, hangDesc, hangMethod)
				if err != nil {
					t.Fatal(err)
				}
				hdr := make(chan error, 1)
				go func() { _, err := cs.Header(); hdr <- err }()
				<-opened // the stream is open (under StreamRetry, Header opened it)
				if err := cs.SendMsg(&pb.StreamRequest{Count: tc.count}); err != nil {
					t.Fatalf("SendMsg: %v", err)
				}
				var r pb.StreamReply
				err = <-hdr
				if err == nil {
					err = cs.RecvMsg(&r)
				}
				if got := status.Code(err); got != tc.wantCode {
					t.Fatalf("Header, then RecvMsg: %v; want %v", err, tc.wantCode)
				}
				if tc.wantCode == codes.OK && r.Seq != 1 {
					t.Fatalf("RecvMsg = %v; want seq 1", &r)
				}
			})
		}
	}
}
