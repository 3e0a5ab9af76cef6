package grpcmw

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
)

// nodeStep is the preset's failover → breaker → bulkhead steps in one unary
// interceptor: the same behaviour as UnaryFailover, UnaryBreaker and
// UnaryBulkhead chained, without two levels of gRPC's per-call interceptor
// chaining. Any of its parts may be nil.
type nodeStep struct {
	router   *Router
	breakers *breaker.Group
	bulk     *bulkhead.Group
}

func (s *nodeStep) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if s.router != nil {
		var err error
		if ctx, err = s.router.route(ctx, cc, opts); err != nil {
			return err
		}
	}
	node := nodeOf(ctx, cc)
	var tk breaker.Ticket // the zero Ticket's Done does nothing
	if s.breakers != nil {
		var err error
		if tk, err = s.breakers.Get(node).Admit(); err != nil {
			return &Error{Code: codes.Unavailable, Node: node, Err: err}
		}
	}
	var permit bulkhead.Permit
	if s.bulk != nil {
		var err error
		if permit, err = s.bulk.Get(node).Acquire(ctx); err != nil {
			err = wrapErr(err, codes.ResourceExhausted, node)
			if s.breakers != nil {
				tk.Done(breakerOutcome(ctx, err))
			}
			return err
		}
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	permit.Release()
	if s.breakers != nil {
		tk.Done(breakerOutcome(ctx, err))
	}
	return err
}
