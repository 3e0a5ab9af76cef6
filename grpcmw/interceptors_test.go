package grpcmw_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
)

// stub is an invoker that returns the errors of script in turn (nil when
// the script is over) and sets each call's trailer from trailers.
type stub struct {
	script   []error
	trailers []metadata.MD
	calls    int
}

func (s *stub) invoke(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
	i := s.calls
	s.calls++
	if i < len(s.trailers) {
		for _, o := range opts {
			if t, ok := o.(grpc.TrailerCallOption); ok {
				*t.TrailerAddr = s.trailers[i]
			}
		}
	}
	if i < len(s.script) {
		return s.script[i]
	}
	return nil
}

var fastRetry = &retry.Policy{BaseDelay: time.Microsecond, MaxDelay: time.Millisecond}

func unavailable() error { return status.Error(codes.Unavailable, "down") }

func TestUnaryRetry(t *testing.T) {
	ctx := context.Background()
	exhausted := status.Error(codes.ResourceExhausted, "slow down")
	pb := func(v string) metadata.MD { return metadata.Pairs(grpcmw.PushbackHeader, v) }
	tests := []struct {
		name     string
		script   []error
		trailers []metadata.MD
		opts     []grpc.CallOption
		calls    int
		code     codes.Code
	}{
		{"retried until success", []error{unavailable(), unavailable()}, nil, nil, 3, codes.OK},
		{"exhausted", []error{unavailable(), unavailable(), unavailable()}, nil, nil, 3, codes.Unavailable},
		{"not retried", []error{status.Error(codes.InvalidArgument, "bad")}, nil, nil, 1, codes.InvalidArgument},
		{"internal not retried", []error{status.Error(codes.Internal, "bug")}, nil, nil, 1, codes.Internal},
		{"pushback retried", []error{exhausted}, []metadata.MD{pb("1")}, nil, 2, codes.OK},
		{"negative pushback stops", []error{exhausted}, []metadata.MD{pb("-1")}, nil, 1, codes.ResourceExhausted},
		{"no pushback stops", []error{exhausted}, nil, nil, 1, codes.ResourceExhausted},
		{"MaxAttempts(1)", []error{unavailable()}, nil, []grpc.CallOption{grpcmw.MaxAttempts(1)}, 1, codes.Unavailable},
		{"MaxAttempts(5)", []error{unavailable(), unavailable(), unavailable(), unavailable()}, nil,
			[]grpc.CallOption{grpcmw.MaxAttempts(5)}, 5, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &stub{script: tt.script, trailers: tt.trailers}
			err := grpcmw.UnaryRetry(fastRetry)(ctx, "/svc/M", nil, nil, nil, s.invoke, tt.opts...)
			if s.calls != tt.calls || status.Code(err) != tt.code {
				t.Errorf("calls %d, code %v (%v); want %d, %v", s.calls, status.Code(err), err, tt.calls, tt.code)
			}
			if tt.name == "exhausted" && !errors.Is(err, retry.ErrExhausted) {
				t.Errorf("err %v does not match retry.ErrExhausted", err)
			}
		})
	}
}

func TestUnaryRetryCallerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	invoker := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		calls++
		cancel()
		return status.Error(codes.Canceled, "cancelled")
	}
	err := grpcmw.UnaryRetry(fastRetry)(ctx, "/svc/M", nil, nil, nil, invoker)
	if calls != 1 || status.Code(err) != codes.Canceled {
		t.Errorf("calls %d, err %v; want 1 call and Canceled", calls, err)
	}
}

func TestUnaryBreaker(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 2, Timeout: time.Minute}, 0)
	ic := grpcmw.UnaryBreaker(g)
	ctx := context.Background()
	s := &stub{script: []error{
		status.Error(codes.NotFound, "a"), // success for the breaker
		unavailable(), status.Error(codes.Internal, "b"),
	}}
	for i := 0; i < 3; i++ {
		_ = ic(ctx, "/svc/M", nil, nil, nil, s.invoke)
	}
	err := ic(ctx, "/svc/M", nil, nil, nil, s.invoke)
	if s.calls != 3 || status.Code(err) != codes.Unavailable || !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("calls %d, err %v; want 3 calls and Unavailable matching breaker.ErrOpen", s.calls, err)
	}
	// Cancelled callers are neutral: they never trip a breaker.
	g2 := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute}, 0)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for i := 0; i < 3; i++ {
		_ = grpcmw.UnaryBreaker(g2)(cctx, "/svc/M", nil, nil, nil, (&stub{script: []error{status.Error(codes.Canceled, "c")}}).invoke)
	}
	if st := g2.Get("").State(); st != breaker.StateClosed {
		t.Errorf("breaker after cancelled calls: %v, want closed", st)
	}
}

func TestUnaryBulkhead(t *testing.T) {
	g, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ic := grpcmw.UnaryBulkhead(g)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- ic(context.Background(), "/svc/M", nil, nil, nil,
			func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				close(inside)
				<-release
				return nil
			})
	}()
	<-inside
	err = ic(context.Background(), "/svc/M", nil, nil, nil, (&stub{}).invoke)
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, bulkhead.ErrFull) {
		t.Errorf("second call: %v, want ResourceExhausted matching bulkhead.ErrFull", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestUnaryRateLimit(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	ic := grpcmw.UnaryRateLimit(l)
	s := &stub{}
	if err := ic(context.Background(), "/svc/M", nil, nil, nil, s.invoke); err != nil {
		t.Fatal(err)
	}
	err = ic(context.Background(), "/svc/M", nil, nil, nil, s.invoke)
	if s.calls != 1 || status.Code(err) != codes.ResourceExhausted || !errors.Is(err, ratelimit.ErrLimited) {
		t.Errorf("calls %d, err %v; want ResourceExhausted matching ratelimit.ErrLimited", s.calls, err)
	}
}
