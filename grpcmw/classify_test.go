package grpcmw

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/retry"
)

func TestClassify(t *testing.T) {
	alive := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// An attempt whose deadline is a millisecond away: the server enforced
	// it first.
	nearlyDue, cancelDue := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelDue()
	pb := func(v string) metadata.MD { return metadata.Pairs(PushbackHeader, v) }
	tests := []struct {
		name     string
		caller   context.Context
		attempt  context.Context
		err      error
		md       metadata.MD
		want     outcome
		retry    bool
		pushback time.Duration
		hasPB    bool
	}{
		{"ok", alive, nil, nil, nil, outcomeSuccess, false, 0, false},
		{"unavailable", alive, nil, status.Error(codes.Unavailable, "x"), nil, outcomeFailure, true, 0, false},
		{"internal", alive, nil, status.Error(codes.Internal, "x"), nil, outcomeFailure, false, 0, false},
		{"unknown", alive, nil, status.Error(codes.Unknown, "x"), nil, outcomeFailure, false, 0, false},
		{"data loss", alive, nil, status.Error(codes.DataLoss, "x"), nil, outcomeFailure, false, 0, false},
		{"server's own deadline", alive, alive, status.Error(codes.DeadlineExceeded, "x"), nil, outcomeFailure, false, 0, false},
		{"caller's deadline enforced by the server first", nearlyDue, nearlyDue, status.Error(codes.DeadlineExceeded, "x"), nil, outcomeNeutral, false, 0, false},
		{"unavailable pushback", alive, nil, status.Error(codes.Unavailable, "x"), pb("20"), outcomeFailure, true, 20 * time.Millisecond, true},
		{"unavailable negative pushback", alive, nil, status.Error(codes.Unavailable, "x"), pb("-1"), outcomeFailure, false, 0, false},
		{"attempt timeout", alive, cancelled, status.Error(codes.DeadlineExceeded, "x"), nil, outcomeFailure, true, 0, false},
		{"attempt deadline enforced by the server first", alive, nearlyDue, status.Error(codes.DeadlineExceeded, "x"), nil, outcomeFailure, true, 0, false},
		{"invalid argument", alive, nil, status.Error(codes.InvalidArgument, "x"), nil, outcomeSuccess, false, 0, false},
		{"not found", alive, nil, status.Error(codes.NotFound, "x"), nil, outcomeSuccess, false, 0, false},
		{"exhausted no pushback", alive, nil, status.Error(codes.ResourceExhausted, "x"), nil, outcomeNeutral, false, 0, false},
		{"exhausted pushback", alive, nil, status.Error(codes.ResourceExhausted, "x"), pb("250"), outcomeNeutral, true, 250 * time.Millisecond, true},
		{"exhausted zero pushback", alive, nil, status.Error(codes.ResourceExhausted, "x"), pb("0"), outcomeNeutral, true, 0, true},
		{"exhausted negative pushback", alive, nil, status.Error(codes.ResourceExhausted, "x"), pb("-1"), outcomeNeutral, false, 0, false},
		{"exhausted bad pushback", alive, nil, status.Error(codes.ResourceExhausted, "x"), pb("soon"), outcomeNeutral, false, 0, false},
		{"caller cancelled", cancelled, nil, status.Error(codes.Unavailable, "x"), nil, outcomeNeutral, false, 0, false},
		{"server cancelled", alive, nil, status.Error(codes.Canceled, "x"), nil, outcomeNeutral, false, 0, false},
		{"attempt cancelled by its timeout", alive, cancelled, status.Error(codes.Canceled, "x"), nil, outcomeFailure, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := classify(tt.caller, tt.attempt, tt.err, tt.md)
			if v.outcome != tt.want || v.retry != tt.retry || v.pushback != tt.pushback || v.hasPB != tt.hasPB {
				t.Errorf("classify = %+v, want outcome %v retry %v pushback %v/%v", v, tt.want, tt.retry, tt.pushback, tt.hasPB)
			}
		})
	}
}

func TestParsePushback(t *testing.T) {
	tests := []struct {
		vals []string
		d    time.Duration
		ok   bool
	}{
		{nil, 0, false},
		{[]string{"100"}, 100 * time.Millisecond, true},
		{[]string{"-5"}, -1, true},
		{[]string{"1.5"}, -1, true},
		{[]string{""}, -1, true},
		{[]string{"1", "2"}, -1, true},
		{[]string{"99999999999999999999"}, -1, true},
	}
	for _, tt := range tests {
		md := metadata.MD{}
		if tt.vals != nil {
			md[PushbackHeader] = tt.vals
		}
		d, ok := parsePushback(md)
		if d != tt.d || ok != tt.ok {
			t.Errorf("parsePushback(%q) = %v, %v; want %v, %v", tt.vals, d, ok, tt.d, tt.ok)
		}
	}
}

func FuzzParsePushback(f *testing.F) {
	for _, s := range []string{"0", "100", "-1", "x", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parsePushback(metadata.Pairs(PushbackHeader, s))
		if !ok || (d < 0 && d != -1) {
			t.Fatalf("parsePushback(%q) = %v, %v", s, d, ok)
		}
	})
}

func TestParseCallOptions(t *testing.T) {
	ctx := ContextWithRoute(context.Background(), Route{Key: "ctx", Access: AccessRead})
	// Dial-time defaults come first, per-call options after: later wins.
	opts := []grpc.CallOption{PartitionKey("default"), Read(), MaxAttempts(5), grpc.WaitForReady(false),
		PartitionKey("call"), Write(), MaxAttempts(0)}
	c := parseCallOptions(ctx, opts)
	if c.route.Key != "call" || c.route.Access != AccessWrite || c.maxAttempts != 5 {
		t.Errorf("parseCallOptions = %+v", c)
	}
	c = parseCallOptions(ctx, nil)
	if c.route.Key != "ctx" || c.route.Access != AccessRead || c.maxAttempts != 0 {
		t.Errorf("parseCallOptions(ctx only) = %+v", c)
	}
}

func TestErrorStatus(t *testing.T) {
	cause := fmt.Errorf("wrapped: %w", breaker.ErrOpen)
	err := error(&Error{Code: codes.Unavailable, Node: "127.0.0.1:1", Err: cause})
	if st, ok := status.FromError(err); !ok || st.Code() != codes.Unavailable {
		t.Errorf("status.FromError = %v, %v", st, ok)
	}
	if !errors.Is(err, breaker.ErrOpen) {
		t.Error("errors.Is(err, breaker.ErrOpen) = false")
	}
	ne := error(&NodeError{Service: "orders", Partition: 2, Write: true, Err: breaker.ErrOpen})
	if status.Code(ne) != codes.Unavailable || !errors.Is(ne, ErrNoHealthyNode) || !errors.Is(ne, breaker.ErrOpen) {
		t.Errorf("NodeError: code %v, Is(ErrNoHealthyNode) %v, Is(ErrOpen) %v",
			status.Code(ne), errors.Is(ne, ErrNoHealthyNode), errors.Is(ne, breaker.ErrOpen))
	}
	if got := wrapErr(context.Canceled, codes.Unknown, ""); status.Code(got) != codes.Canceled || !errors.Is(got, context.Canceled) {
		t.Errorf("wrapErr(Canceled) = %v", got)
	}
	// A status error deep in a chain is lifted so callers see its code.
	deep := fmt.Errorf("ctx: %w", status.Error(codes.NotFound, "nope"))
	if got := wrapErr(deep, codes.Unknown, ""); status.Code(got) != codes.NotFound {
		t.Errorf("wrapErr(deep) code = %v", status.Code(got))
	}
	// Retry exhaustion keeps the last attempt's code and matches ErrExhausted.
	ex := retryResult(context.Background(), &retry.ExhaustedError{Attempts: 3, Last: status.Error(codes.Unavailable, "down"), Reason: retry.ErrExhausted})
	if status.Code(ex) != codes.Unavailable || !errors.Is(ex, retry.ErrExhausted) {
		t.Errorf("retryResult = %v (code %v)", ex, status.Code(ex))
	}
}
