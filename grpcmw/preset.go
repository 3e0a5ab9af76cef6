package grpcmw

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/internal/brkobs"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// reconnectBackoff is the preset's backoff between attempts to reconnect
// to a node (see DialOptions).
var reconnectBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}

// DialOptions returns the dial options of the canonical chain, outermost
// first: tracing → rate limit → retry → failover → breaker → bulkhead, as
// unary and stream interceptors, each step with good defaults (see the
// options) and each left out when its option says so.
//
// With [WithWatcher] (or [WithRouter]) it also installs the topology
// resolver for "topology:///service" targets (grpc.WithResolvers), selects
// the topology balancer (grpc.WithDefaultServiceConfig with
// [ServiceConfig]), and adds the failover step, so that
//
//	conn, err := grpc.NewClient("topology:///orders", append(grpcmw.DialOptions(
//		grpcmw.WithWatcher(w), grpcmw.WithPort(7070)),
//		grpc.WithTransportCredentials(creds))...)
//
// is the whole setup. It always disables gRPC's own retries
// (grpc.WithDisableRetry): they would multiply rampart's attempts. Give
// transport credentials and other dial options alongside.
//
// With a topology it also bounds the backoff between attempts to reconnect
// to a node: from 100ms, growing 1.6 times with 20% jitter, up to 2s.
// gRPC's default grows to two minutes, so a primary back from a long outage
// would stay unused, and its partition unwritable, for up to that long; a
// node that stays down now gets a connection attempt every 2s or so from
// each client. Put your own grpc.WithConnectParams after these options to
// choose otherwise.
func DialOptions(opts ...Option) []grpc.DialOption {
	dial, unary, stream := newPreset(newConfig(opts))
	return append(dial,
		grpc.WithChainUnaryInterceptor(unary.unary),
		grpc.WithChainStreamInterceptor(stream...))
}

// newPreset builds the preset c describes: its dial options other than the
// interceptors, its unary steps and its stream interceptors.
func newPreset(c *config) (dial []grpc.DialOption, unary *unaryChain, stream []grpc.StreamClientInterceptor) {
	chain := &unaryChain{tracer: c.tracer, limiter: c.limiter}
	dial = []grpc.DialOption{grpc.WithDisableRetry()}
	if c.breakers == nil && !c.noBreak {
		c.breakers = breaker.NewGroup(breaker.Settings{}, 0)
	}
	if c.noBreak {
		c.breakers = nil
	}
	r := c.router
	if r == nil && c.watcher != nil {
		r = c.newRouter(c.watcher)
	}
	if c.tracer != nil {
		stream = append(stream, StreamTracing(c.tracer))
	}
	if c.limiter != nil {
		stream = append(stream, StreamRateLimit(c.limiter))
	}
	if !c.noRetry {
		p := c.policy
		if p == nil {
			p = retry.NewPolicy(retry.Policy{})
		}
		chain.policy = p
		stream = append(stream, StreamRetry(p))
	}
	if r != nil {
		dial = append(dial,
			grpc.WithResolvers(r),
			grpc.WithDefaultServiceConfig(ServiceConfig),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: 20 * time.Second}))
		stream = append(stream, StreamFailover(r))
	}
	step := &chain.step
	step.router = r
	if g := c.breakers; g != nil {
		if r != nil && r.breakers != nil {
			g = r.breakers // one group for failover and the breaker step
		}
		step.breakers = g
		stream = append(stream, StreamBreaker(g))
		if c.tracer != nil {
			brkobs.Observe(g, c.tracer.Metrics())
		}
	}
	if !c.noBulk {
		g := c.bulk
		if g == nil {
			g, _ = bulkhead.NewGroup(bulkhead.Config{MaxQueue: 128}, 0)
		}
		step.bulk = g
		stream = append(stream, StreamBulkhead(g))
	}
	if c.tracer != nil {
		step.traceAttempts = true
		stream = append(stream, StreamAttemptTracing())
	}
	return dial, chain, stream
}

// unaryChain is the preset's unary steps, outermost first: tracing → rate
// limit → retry → failover → breaker → bulkhead → attempt tracing. It
// behaves as UnaryTracing, UnaryRateLimit, UnaryRetry and the node step
// chained by grpc.WithChainUnaryInterceptor, but as one interceptor that
// calls each step directly, without gRPC's per-call closures between them.
// A step is left out when its field is nil (or, for the node step, when
// all of its parts are).
type unaryChain struct {
	tracer  *sampling.Tracer
	limiter *ratelimit.Limiter
	policy  *retry.Policy
	step    nodeStep
}

func (c *unaryChain) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if c.tracer == nil {
		return c.untraced(ctx, method, req, reply, cc, invoker, opts)
	}
	tctx := startTrace(ctx, c.tracer, method)
	err := c.untraced(tctx, method, req, reply, cc, invoker, opts)
	tctx.ts.end(err)
	return err
}

// untraced runs the steps below tracing.
func (c *unaryChain) untraced(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	if c.limiter != nil {
		if err := takeToken(ctx, c.limiter); err != nil {
			return err
		}
	}
	if c.policy != nil {
		return retryUnary(c.policy, &c.step, ctx, method, req, reply, cc, invoker, opts)
	}
	return c.step.unary(ctx, method, req, reply, cc, invoker, opts...)
}
