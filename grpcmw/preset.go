package grpcmw

import (
	"context"

	"google.golang.org/grpc"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

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
func DialOptions(opts ...Option) []grpc.DialOption {
	c := newConfig(opts)
	var (
		unary  []grpc.UnaryClientInterceptor
		stream []grpc.StreamClientInterceptor
		dial   = []grpc.DialOption{grpc.WithDisableRetry()}
	)
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
		unary = append(unary, UnaryTracing(c.tracer))
		stream = append(stream, StreamTracing(c.tracer))
	}
	if c.limiter != nil {
		unary = append(unary, UnaryRateLimit(c.limiter))
		stream = append(stream, StreamRateLimit(c.limiter))
	}
	if !c.noRetry {
		p := c.policy
		if p == nil {
			p = retry.NewPolicy(retry.Policy{})
		}
		unary = append(unary, UnaryRetry(p))
		stream = append(stream, StreamRetry(p))
	}
	if r != nil {
		dial = append(dial,
			grpc.WithResolvers(r),
			grpc.WithDefaultServiceConfig(ServiceConfig))
		stream = append(stream, StreamFailover(r))
	}
	step := &nodeStep{router: r}
	if g := c.breakers; g != nil {
		if r != nil && r.breakers != nil {
			g = r.breakers // one group for failover and the breaker step
		}
		step.breakers = g
		stream = append(stream, StreamBreaker(g))
		if c.tracer != nil {
			observeBreakers(g, c.tracer.Metrics())
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
	if step.router != nil || step.breakers != nil || step.bulk != nil {
		unary = append(unary, step.unary)
	}
	if c.tracer != nil {
		unary = append(unary, UnaryAttemptTracing())
		stream = append(stream, StreamAttemptTracing())
	}
	return append(dial,
		grpc.WithChainUnaryInterceptor(unary...),
		grpc.WithChainStreamInterceptor(stream...))
}

// observeBreakers records every state change of g's breakers in m (the
// rampart.breaker.transitions counter and the rampart.breaker.state gauge),
// keyed by node. Each preset built with a tracer observes its group once.
func observeBreakers(g *breaker.Group, m *sampling.Metrics) {
	if m == nil {
		return
	}
	g.Observe(func(ev breaker.StateChange) {
		m.BreakerTransition(context.Background(), ev.Name, int(ev.From), int(ev.To))
	})
}
