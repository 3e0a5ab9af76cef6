package grpcmw

import (
	"context"

	"google.golang.org/grpc"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
)

// nodeStep is the preset's per-attempt steps in one unary interceptor:
// failover → breaker → bulkhead → attempt tracing, with the same behaviour
// as UnaryFailover, UnaryBreaker, UnaryBulkhead and UnaryAttemptTracing
// chained, without gRPC's per-call closure between each two of them. Any of
// its parts may be left out (nil, or traceAttempts false).
type nodeStep struct {
	router        *Router
	breakers      *breaker.Group
	bulk          *bulkhead.Group
	traceAttempts bool
}

func (s *nodeStep) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if s.router == nil && s.breakers == nil && s.bulk == nil && !s.traceAttempts {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	var a *attemptInfo
	if s.router != nil {
		var err error
		if ctx, a, err = s.router.route(ctx, cc, opts); err != nil {
			return err
		}
	} else {
		a = attemptFrom(ctx)
	}
	var (
		node string
		tk   breaker.Ticket // the zero Ticket's Done does nothing
	)
	if s.breakers != nil {
		var b *breaker.Breaker
		node, b = attemptBreaker(a, cc, s.breakers)
		var err error
		if tk, err = b.Admit(); err != nil {
			return breakerRefusal(ctx, node, err)
		}
	} else {
		node = attemptNode(a, cc)
	}
	defer tk.Done(breaker.Neutral) // if the invoker panics: free a probe slot, blame no one
	var permit bulkhead.Permit
	if s.bulk != nil {
		var err error
		if permit, err = acquireSlot(ctx, s.bulk, node); err != nil {
			tk.Done(breakerOutcome(ctx, err))
			return err
		}
		defer permit.Release() // also if the invoker panics
	}
	var err error
	if s.traceAttempts {
		err = traceAttempt(ctx, method, req, reply, cc, invoker, opts)
	} else {
		err = invoker(ctx, method, req, reply, cc, opts...)
	}
	permit.Release()
	tk.Done(breakerOutcome(ctx, err))
	return err
}
