package grpcmw

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
)

// ---- rate limit ----

// UnaryRateLimit returns an interceptor that takes a token of l for each
// call, waiting as l allows. A refused call fails with ResourceExhausted and
// matches ratelimit.ErrLimited; it never reaches the wire. Put it outside
// the retry step so that a call costs one token however many attempts it
// makes.
func UnaryRateLimit(l *ratelimit.Limiter) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if err := takeToken(ctx, l); err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamRateLimit is UnaryRateLimit for streams: one token per stream.
func StreamRateLimit(l *ratelimit.Limiter) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if err := takeToken(ctx, l); err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

// takeToken waits for a token of l, records the wait in the metrics of the
// call's tracer, if any, and returns a refusal as ResourceExhausted.
func takeToken(ctx context.Context, l *ratelimit.Limiter) error {
	waited, err := l.Take(ctx)
	if err != nil {
		return wrapErr(err, codes.ResourceExhausted, "")
	}
	if waited > 0 {
		if ts := traceFrom(ctx); ts != nil {
			ts.recordWait(true, "", waited)
		}
	}
	return nil
}

// ---- retry ----

// UnaryRetry returns an interceptor that runs each call under p: a failed
// attempt is retried when the error is Unavailable, an attempt timeout
// (p.AttemptTimeout), or ResourceExhausted with a non-negative
// grpc-retry-pushback-ms trailer (honoured as the least wait, unless the
// failover step has another node for the next attempt: the pushback is
// about the node that sent it, which failover then avoids until it is
// over); no other code is retried, and a cancelled caller stops at once. Each attempt's context
// tells the failover step and the topology picker which nodes were already
// tried, so that a retry goes to another node. A nil p means the zero
// retry.Policy. The per-call option [MaxAttempts] overrides
// p.MaxAttempts.
//
// When it gives up, the error carries the last attempt's gRPC code and
// matches retry.ErrExhausted and the last cause with errors.Is.
//
// The call's grpc.OnFinish callbacks run once, with the call's result, as
// gRPC promises; the attempts do not get them. StreamRetry does the same
// with the status of the stream the call commits to.
//
// The caller's grpc.Header, grpc.Trailer and grpc.Peer destinations are
// emptied before each retry: after the call they hold the last attempt's
// values, or nothing if it never reached a node (a breaker refused it, for
// example), not a discarded attempt's. StreamRetry does the same.
//
// Do not combine it with gRPC's own retries (a retryPolicy in the service
// config): attempts would multiply. The preset disables gRPC's retries.
func UnaryRetry(p *retry.Policy) grpc.UnaryClientInterceptor {
	if p == nil {
		p = &retry.Policy{}
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return retryUnary(p, nil, ctx, method, req, reply, cc, invoker, opts)
	}
}

// retryUnary runs one call under p, as UnaryRetry does. Each attempt goes
// through next when it is not nil (the preset's node step, called directly
// rather than through gRPC's interceptor chaining), or else straight to
// invoker.
func retryUnary(p *retry.Policy, next *nodeStep, ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	cfg := parseCallOptions(ctx, opts)
	opts, fin := splitFinish(opts, cfg.finish)
	st := new(unaryAttempts)
	c := unaryCall{ctx: ctx, method: method, req: req, reply: reply, cc: cc, invoker: invoker, next: next, policy: p, st: st}
	st.a.caller, st.a.route = ctx, cfg.route
	if len(opts) < len(st.optBuf) {
		c.opts = st.optBuf[:len(opts)+1]
	} else {
		c.opts = make([]grpc.CallOption, len(opts)+1)
	}
	copy(c.opts, opts)
	c.opts[len(opts)] = grpc.Trailer(&st.trailer)
	err := retryResult(ctx, policyFor(p, cfg).Do(ctx, c.attempt))
	fin.deliver(err) // once for the call, not once per attempt
	return err
}

// unaryCall is the state of one call under UnaryRetry. It lives on the
// caller's stack: what the attempts hand down the chain, which may keep it,
// is in st.
type unaryCall struct {
	ctx        context.Context // the caller's
	method     string
	req, reply any
	cc         *grpc.ClientConn
	invoker    grpc.UnaryInvoker
	next       *nodeStep         // the step each attempt goes through, or nil
	policy     *retry.Policy     // the caller's, for its MaxPushback
	opts       []grpc.CallOption // the caller's, plus the trailer option
	tried      []string          // allocated at the first failed attempt
	st         *unaryAttempts
}

// unaryAttempts is what a call's attempts hand down the chain: their
// context and state, and the call options with the trailer's destination.
// It is the one allocation of a call under UnaryRetry.
type unaryAttempts struct {
	a       attemptInfo // reused: attempts run one after another
	first   attemptCtx  // the first attempt's context
	trailer metadata.MD
	optBuf  [4]grpc.CallOption // room for 3 of the caller's options (gRPC's defaults count)
}

// attempt runs one attempt of the call.
func (c *unaryCall) attempt(actx context.Context, at retry.Attempt) error {
	st := c.st
	a := &st.a
	a.tried, a.node, a.pinned, a.unrouted = c.tried, "", false, false
	a.brk, a.brkGroup = nil, nil
	a.partition, a.part, a.router, a.waited = -1, nil, nil, at.Waited
	st.trailer = nil
	if at.Number > 1 {
		clearCallerMetadata(c.opts)
	}
	var ctx context.Context
	if at.Number == 1 {
		// Most calls make one attempt: its context costs no allocation.
		st.first = attemptCtx{Context: actx, a: a}
		ctx = &st.first
	} else {
		ctx = withAttempt(actx, a)
	}
	var err error
	if c.next != nil {
		err = c.next.unary(ctx, c.method, c.req, c.reply, c.cc, c.invoker, c.opts...)
	} else {
		err = c.invoker(ctx, c.method, c.req, c.reply, c.cc, c.opts...)
	}
	if err == nil {
		return nil
	}
	if node := a.getNode(); node != "" {
		c.tried = append(c.tried, node)
	}
	return decide(c.ctx, actx, err, st.trailer, a, c.policy)
}

// clearCallerMetadata empties the destinations of the caller's grpc.Header,
// grpc.Trailer and grpc.Peer options before a retry: gRPC fills them only
// for an attempt that reached the wire, and after the call they must hold
// the last attempt's values, not a discarded attempt's.
func clearCallerMetadata(opts []grpc.CallOption) {
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = nil
		case grpc.TrailerCallOption:
			*o.TrailerAddr = nil
		case grpc.PeerCallOption:
			*o.PeerAddr = peer.Peer{}
		}
	}
}

// policyFor returns p with the call's MaxAttempts, if it sets one.
func policyFor(p *retry.Policy, cfg callConfig) *retry.Policy {
	if cfg.maxAttempts == 0 || cfg.maxAttempts == p.MaxAttempts {
		return p
	}
	cp := *p
	cp.MaxAttempts = cfg.maxAttempts
	return &cp
}

// decide wraps the error of attempt a for the retry loop. A pushback is
// about the node that sent it: when failover chose that node and another
// candidate is free, the next attempt goes there without waiting; the
// throttle lasts at most p's MaxPushback.
func decide(callerCtx, attemptCtx context.Context, err error, trailer metadata.MD, a *attemptInfo, p *retry.Policy) error {
	node, failover := a.pinnedNode()
	if errors.Is(err, ErrNoHealthyNode) || errors.Is(err, ErrNoTopology) {
		return retry.Permanent(err) // failover has nowhere else to go
	}
	if localRefusal(err) {
		if failover {
			return err // another node may take the next attempt
		}
		return retry.Permanent(err)
	}
	v := classify(callerCtx, attemptCtx, err, trailer)
	switch {
	case !v.retry:
		return retry.Permanent(err)
	case v.hasPB && v.pushback >= 0 && failover && a.router != nil:
		// The retry package's own reading of MaxPushback, defaults filled in.
		maxPB := retry.NewPolicy(*p).MaxPushback
		if maxPB < 0 { // pushback delays ignored: nothing to record
			return retry.Pushback(err, v.pushback)
		}
		if wait := a.router.throttled(a, node, min(v.pushback, maxPB)); wait > 0 {
			return retry.Pushback(err, wait)
		}
		return err
	case v.hasPB:
		return retry.Pushback(err, v.pushback)
	}
	return err
}

// retryResult turns the retry loop's error into one with a gRPC status.
func retryResult(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ex *retry.ExhaustedError
	if !errors.As(err, &ex) {
		return wrapErr(err, codes.Unknown, "")
	}
	code := status.Code(ex.Last)
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(ex.Reason, ctxErr) {
		code = codes.Canceled
		if ctxErr == context.DeadlineExceeded {
			code = codes.DeadlineExceeded
		}
	} else if ex.Reason == context.DeadlineExceeded {
		code = codes.DeadlineExceeded
	}
	return &Error{Code: code, Err: err}
}

// ---- failover ----

// UnaryFailover returns an interceptor that chooses the node of each
// attempt from r's current map: the partition that owns the hash of the
// call's [PartitionKey], then its primary, and for a call marked [Read] (or
// [WriteAnyNode]) its replicas in order, skipping nodes whose breaker is
// open and, while another candidate is free, nodes whose retry pushback is
// not over, and preferring nodes no earlier attempt of the call used (when all
// were used, the first healthy one is tried again: a write retries its
// primary). The topology balancer then
// sends the attempt to that node. A call that starts before the watcher's
// first map waits for it (see [WithTopologyWait]). With no node left the
// call fails with
// Unavailable and a [*NodeError] that matches ErrNoHealthyNode (and
// breaker.ErrOpen when a breaker was the reason).
//
// It needs a ClientConn whose balancer is the topology balancer (target
// "topology:///service"; the preset sets it up).
func UnaryFailover(r *Router) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, _, err := r.route(ctx, cc, opts)
		if err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamFailover is UnaryFailover for streams.
func StreamFailover(r *Router) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, _, err := r.route(ctx, cc, opts)
		if err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

// route pins the attempt in ctx to a node, creating the attempt's state
// when no retry step did. It returns the attempt's context and state.
func (r *Router) route(ctx context.Context, cc *grpc.ClientConn, opts []grpc.CallOption) (context.Context, *attemptInfo, error) {
	a := attemptFrom(ctx)
	if a == nil {
		a = &attemptInfo{route: parseCallOptions(ctx, opts).route, partition: -1}
		ctx = withAttempt(ctx, a)
	}
	m := r.watcher.Current()
	if m == nil {
		// Wait within the call's own context, not an attempt's timeout.
		var err error
		if m, err = r.firstMap(a.callerOr(ctx)); err != nil {
			code := codes.Unavailable
			if c := status.FromContextError(a.callerOr(ctx).Err()).Code(); c != codes.OK {
				code = c // the caller gave up waiting: Canceled or DeadlineExceeded
			}
			return ctx, a, &Error{Code: code, Err: err}
		}
	}
	r.learn(m)
	part := m.Partition(r.hash.Sum(a.route.Key))
	if part == nil {
		return ctx, a, &Error{Code: codes.Unavailable, Err: ErrNoTopology}
	}
	a.partition, a.part, a.router = part.Index, part, r
	var (
		cause    error
		again    string // a healthy candidate an earlier attempt used
		againBrk *breaker.Breaker
		soonest  string // the healthy throttled candidate free first
		soonBrk  *breaker.Breaker
		soon     time.Time
	)
	th := r.throttle.NewView(r.now)
	try := func(node string) bool {
		addr := r.addr(node)
		b, err := r.breaker(addr)
		if err != nil {
			cause = err
			return false
		}
		if until, ok := th.Until(addr); ok {
			if soonest == "" || until.Before(soon) {
				soonest, soonBrk, soon = addr, b, until
			}
			return false
		}
		if a.excluded(addr) {
			if again == "" {
				again, againBrk = addr, b
			}
			return false
		}
		a.pin(addr, b, r.breakers)
		return true
	}
	if try(part.Primary) {
		return ctx, a, nil
	}
	if a.route.Access != AccessWrite {
		for _, n := range part.Replicas {
			if try(n) {
				return ctx, a, nil
			}
		}
	}
	if again != "" {
		// Every healthy candidate was tried: try the first one again.
		a.pin(again, againBrk, r.breakers)
		return ctx, a, nil
	}
	if soonest != "" {
		// Every healthy candidate is throttled: take the one free first.
		a.pin(soonest, soonBrk, r.breakers)
		return ctx, a, nil
	}
	return ctx, a, &NodeError{Service: serviceOf(cc), Partition: part.Index, Write: a.route.Access == AccessWrite, Err: cause}
}

// serviceOf returns the service part of cc's target ("orders" for
// "topology:///orders").
func serviceOf(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	t := cc.Target()
	return t[strings.LastIndexByte(t, '/')+1:]
}

// nodeOf returns the node of the attempt in ctx, or cc's target when no
// failover step chose one.
func nodeOf(ctx context.Context, cc *grpc.ClientConn) string {
	return attemptNode(attemptFrom(ctx), cc)
}

// attemptNode returns the node the failover step chose for the attempt a
// (which may be nil), or cc's target when it chose none.
func attemptNode(a *attemptInfo, cc *grpc.ClientConn) string {
	if a != nil {
		if n, pinned := a.pinnedNode(); pinned {
			return n
		}
	}
	return target(cc)
}

// attemptBreaker returns the node of the attempt a (which may be nil), as
// attemptNode does, and its breaker in g: the one the failover step looked
// up when it chose the node, or else g.Get(node).
func attemptBreaker(a *attemptInfo, cc *grpc.ClientConn, g *breaker.Group) (string, *breaker.Breaker) {
	var (
		node   string
		pinned bool
		b      *breaker.Breaker
	)
	if a != nil {
		node, pinned, b = a.pinnedBreaker(g)
	}
	if !pinned {
		node, b = target(cc), nil
	}
	if b == nil {
		b = g.Get(node)
	}
	return node, b
}

// target returns cc's target, or "" for a nil cc.
func target(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	return cc.Target()
}

// ---- breaker ----

// UnaryBreaker returns an interceptor that guards each attempt with the
// breaker of its node in g: the node the failover step chose, or the
// ClientConn's target without one. A rejected attempt fails with
// Unavailable and matches breaker.ErrOpen. Outcomes: Unavailable, Internal,
// Unknown, DataLoss and DeadlineExceeded are failures; a cancelled caller
// (or a DeadlineExceeded that beat its deadline by a moment),
// ResourceExhausted and a refusal by an inner bulkhead are neutral; every
// other code is a success. An invoker that panics
// leaves a neutral outcome behind, so that a half-open probe slot is freed.
func UnaryBreaker(g *breaker.Group) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		node, b := attemptBreaker(attemptFrom(ctx), cc, g)
		tk, err := b.Admit()
		if err != nil {
			return breakerRefusal(ctx, node, err)
		}
		defer tk.Done(breaker.Neutral) // if the invoker panics: free a probe slot, blame no one
		err = invoker(ctx, method, req, reply, cc, opts...)
		tk.Done(breakerOutcome(ctx, err))
		return err
	}
}

// breakerOutcome classifies err for a breaker.
// ctx is the attempt's context; the caller's comes from the retry step.
func breakerOutcome(ctx context.Context, err error) breaker.Outcome {
	if err == nil {
		return breaker.Success
	}
	if localRefusal(err) || attemptFrom(ctx).wasUnrouted() {
		return breaker.Neutral
	}
	switch classify(attemptFrom(ctx).callerOr(ctx), ctx, err, nil).outcome {
	case outcomeSuccess:
		return breaker.Success
	case outcomeFailure:
		return breaker.Failure
	}
	return breaker.Neutral
}

// ---- bulkhead ----

// UnaryBulkhead returns an interceptor that holds a slot of its node's
// bulkhead in g for each attempt (the node as for [UnaryBreaker]). A refused
// attempt fails with ResourceExhausted and matches bulkhead.ErrFull; the
// retry step then tries another node. An attempt whose own timeout ends its
// wait in the queue is refused too: it fails with DeadlineExceeded and
// matches bulkhead.ErrFull, so that the node's breaker does not count it.
// A caller that gives up while queued gets its context's error.
func UnaryBulkhead(g *bulkhead.Group) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		node := nodeOf(ctx, cc)
		p, err := acquireSlot(ctx, g, node)
		if err != nil {
			return err
		}
		defer p.Release() // also if the invoker panics
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// breakerRefusal returns the error of an attempt that node's breaker
// refused (err), and records the refusal in the call's trace, if any.
func breakerRefusal(ctx context.Context, node string, err error) error {
	err = &Error{Code: codes.Unavailable, Node: node, Err: err}
	if ts := traceFrom(ctx); ts != nil {
		ts.rejectAttempt(node, err)
	}
	return err
}

// acquireSlot takes a slot of node's bulkhead in g, records a wait for it
// in the metrics of the call's tracer, if any, and returns a refusal (see
// queueRefusal) as ResourceExhausted.
func acquireSlot(ctx context.Context, g *bulkhead.Group, node string) (bulkhead.Permit, error) {
	p, err := g.Get(node).Acquire(ctx)
	if err != nil {
		err = wrapErr(queueRefusal(ctx, err), codes.ResourceExhausted, node)
		if ts := traceFrom(ctx); ts != nil {
			ts.rejectAttempt(node, err)
		}
		return p, err
	}
	if d := p.Waited(); d > 0 {
		if ts := traceFrom(ctx); ts != nil {
			ts.recordWait(false, node, d)
		}
	}
	return p, nil
}

// queueRefusal returns err, from the bulkhead of the attempt in ctx, as a
// refusal (matching bulkhead.ErrFull) also when the attempt's own context
// ended its wait; the caller's ending it stays the caller's.
func queueRefusal(ctx context.Context, err error) error {
	if attemptFrom(ctx).callerOr(ctx).Err() != nil {
		return err
	}
	return bulkhead.AsRefusal(err)
}

// localRefusal reports whether err is a per-node refusal by a local policy
// (an open breaker, a full bulkhead): the attempt never reached the node.
func localRefusal(err error) bool {
	if errors.Is(err, ErrNoHealthyNode) {
		return false
	}
	return errors.Is(err, breaker.ErrOpen) || errors.Is(err, bulkhead.ErrFull)
}
