package grpcmw

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// traceState is the logical call a tracing interceptor started, carried in
// the context of the layers below. The sampling package's own (pooled)
// contexts never reach gRPC: only the attempt's trace context does, as
// outgoing metadata.
type traceState struct {
	call    *sampling.Call
	sctx    context.Context // the context Tracer.Start returned
	metrics *sampling.Metrics
	plainTP bool // the tracer's propagator is propagation.TraceContext

	// A unary call uses call from one goroutine. A stream's layers may end
	// the call and its attempts from several at once: the caller's, and
	// the context.AfterFunc of each layer when the stream's context ends.
	// For streams, mu serialises every use of call, and ended says that
	// the call is over and back in its pool, so that no attempt may touch
	// it any more.
	mu    sync.Mutex
	ended bool
	open  *streamAttempt // the stream's attempt in progress, if any
	// refused says rejectAttempt recorded a breaker's or bulkhead's
	// refusal of an attempt: the call's end does not record it again.
	refused bool
}

// streamAttempt is a stream's attempt as StreamAttemptTracing records it.
// Its fields are used under the call's traceState.mu.
type streamAttempt struct {
	ctx    context.Context
	att    sampling.Attempt
	waited time.Duration
	done   bool
}

// end ends the attempt with err's outcome, once.
func (a *streamAttempt) end(err error) {
	if !a.done {
		a.done = true
		a.att.End(attemptOutcome(a.ctx, err), err, a.waited)
	}
}

type traceKey struct{}

// traceCtx is the context of a traced call: its parent with the call's
// trace state as the value of traceKey{}, as context.WithValue would make
// it, with the state and the context in one allocation.
type traceCtx struct {
	context.Context
	ts traceState
}

// Value returns the trace state for traceKey{}, and otherwise asks the
// parent.
func (c *traceCtx) Value(key any) any {
	if _, ok := key.(traceKey); ok {
		return &c.ts
	}
	return c.Context.Value(key)
}

// String names the context, as context.WithValue's contexts do.
func (c *traceCtx) String() string { return "grpcmw.traceContext" }

func traceFrom(ctx context.Context) *traceState {
	s, _ := ctx.Value(traceKey{}).(*traceState)
	return s
}

// startTrace starts the sampling call of a call to method and returns the
// context for the layers below, which carries its trace state.
func startTrace(ctx context.Context, t *sampling.Tracer, method string) *traceCtx {
	sctx, call := t.Start(ctx, spanName(method), trace.SpanKindClient)
	_, plain := t.Propagator().(propagation.TraceContext)
	return &traceCtx{Context: ctx, ts: traceState{call: call, sctx: sctx, metrics: t.Metrics(), plainTP: plain}}
}

// end ends the call with its result err.
func (ts *traceState) end(err error) {
	recordRejection(ts, err)
	ts.call.End(err)
}

// endStream is end for a stream's call: it ends the call once, whichever of
// the stream's goroutines comes first.
func (ts *traceState) endStream(err error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.ended {
		ts.ended = true
		if a := ts.open; a != nil {
			// gRPC may run the call's finishing callback before the
			// attempt's: the attempt ends first, with its own outcome
			// (the call's End would close it as a failure).
			ts.open = nil
			a.end(err)
		}
		ts.end(err)
	}
}

// recordWait records in the call's metrics how long an attempt waited for
// node's bulkhead (rateLimit false) or for the rate limiter (node ""),
// unless the call has ended: a stream's attempt may run after its context
// ended the call and returned its sampling context to the pool. mu orders
// the two.
func (ts *traceState) recordWait(rateLimit bool, node string, d time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case ts.ended:
	case rateLimit:
		ts.metrics.RateLimitWait(ts.sctx, node, d)
	default:
		ts.metrics.BulkheadWait(ts.sctx, node, d)
	}
}

// rejectAttempt records that node's breaker or bulkhead refused an attempt
// of the call with err: the call is exported, even if a later attempt on
// another node succeeds, and the bulkhead's refusal is counted. The call's
// end then records no breaker or bulkhead refusal again. A stream's call
// may have ended already: mu orders the two.
func (ts *traceState) rejectAttempt(node string, err error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.ended {
		ts.refusal(node, err)
	}
}

// refusal records err in the call if it is a refusal by node's breaker or
// bulkhead. A stream's caller holds mu.
func (ts *traceState) refusal(node string, err error) {
	switch {
	case errors.Is(err, breaker.ErrOpen):
		ts.call.Rejected(sampling.PolicyBreaker, err)
	case errors.Is(err, bulkhead.ErrFull):
		ts.metrics.BulkheadRejected(ts.sctx, node)
		ts.call.Rejected(sampling.PolicyBulkhead, err)
	default:
		return
	}
	ts.refused = true
}

// spanName is the call's span name: the method without its leading slash
// ("echo.Echo/Echo"), bounded by the service's own methods.
func spanName(method string) string { return strings.TrimPrefix(method, "/") }

// UnaryTracing returns an interceptor that traces each call as one
// sampling.Call of t: one head sampling decision per logical call, every
// call that saw an error exported, policy rejections recorded as events.
// Attempts are recorded by [UnaryAttemptTracing], which belongs innermost
// in the chain (the preset puts both in place); without it the call is
// traced as a whole and no trace context is sent. A nil t traces nothing.
//
// Span attributes are the method, node, partition, attempt number and
// outcome: never a request field or metadata value.
func UnaryTracing(t *sampling.Tracer) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if t == nil {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		tctx := startTrace(ctx, t, method)
		err := invoker(tctx, method, req, reply, cc, opts...)
		tctx.ts.end(err)
		return err
	}
}

// StreamTracing is UnaryTracing for streams: the call ends when the stream
// does (RecvMsg reports its end, its context ends, or gRPC finishes it on
// its own, as when its ClientConn closes).
func StreamTracing(t *sampling.Tracer) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if t == nil {
			return streamer(ctx, desc, cc, method, opts...)
		}
		tctx := startTrace(ctx, t, method)
		// The finishing option ends the call when gRPC finishes the stream
		// on its own (its ClientConn closing). Above the retry step it
		// sees the call's end, not each attempt's: the retry step runs
		// its callers' OnFinish callbacks once per call.
		es := newEndStream(desc, false, tctx.ts.endStream)
		cs, err := streamer(tctx, desc, cc, method, es.opts(opts)...)
		return es.start(ctx, cs, err)
	}
}

// UnaryAttemptTracing returns the interceptor that records each attempt of
// a call traced by [UnaryTracing]: its node (chosen by the failover step,
// or the ClientConn's target), partition, outcome and the backoff before
// it, and sends its W3C trace context as outgoing metadata. Put it
// innermost. Calls that are not traced pass through.
func UnaryAttemptTracing() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return traceAttempt(ctx, method, req, reply, cc, invoker, opts)
	}
}

// traceAttempt is UnaryAttemptTracing's interceptor.
func traceAttempt(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	ts := traceFrom(ctx)
	if ts == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ctx, att, waited := startAttempt(ctx, ts, cc)
	err := invoker(ctx, method, req, reply, cc, opts...)
	att.End(attemptOutcome(ctx, err), err, waited)
	return err
}

// StreamAttemptTracing is UnaryAttemptTracing for streams: the attempt
// ends at the stream's first response (a message, its end or an error).
func StreamAttemptTracing() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ts := traceFrom(ctx)
		if ts == nil {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ts.mu.Lock()
		if ts.ended { // the call's context ended: there is nothing to record in
			ts.mu.Unlock()
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, att, waited := startAttempt(ctx, ts, cc)
		sa := &streamAttempt{ctx: ctx, att: att, waited: waited}
		ts.open = sa
		ts.mu.Unlock()
		end := func(err error) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if ts.open == sa {
				ts.open = nil
			}
			if !ts.ended {
				sa.end(err)
			}
		}
		es := newEndStream(desc, true, end)
		cs, err := streamer(ctx, desc, cc, method, es.opts(opts)...)
		return es.start(ctx, cs, err)
	}
}

// startAttempt starts the sampling attempt of the attempt in ctx and puts
// its trace context in ctx's outgoing metadata.
func startAttempt(ctx context.Context, ts *traceState, cc *grpc.ClientConn) (context.Context, sampling.Attempt, time.Duration) {
	node, partition, waited := nodeOf(ctx, cc), -1, time.Duration(0)
	if a := attemptFrom(ctx); a != nil {
		partition, waited = a.partition, a.waited
		if a.part != nil && a.router != nil {
			// Failover sent the attempt to a node other than the primary.
			if from := a.router.addr(a.part.Primary); from != node {
				ts.metrics.Failover(ts.sctx, partition, from, node)
			}
		}
	}
	actx, att := ts.call.StartAttempt(ts.sctx, node, partition)
	if ts.plainTP && plainTraceparent(ctx, actx) {
		// What propagation.TraceContext would inject: a traceparent alone.
		// Appending it spares a copy of the caller's metadata.
		var buf [55]byte // "00-" trace-id "-" span-id "-" flags
		tp := att.AppendTraceparent(buf[:0])
		return metadata.AppendToOutgoingContext(ctx, traceparentKey, string(tp)), att, waited
	}
	md, ok := metadata.FromOutgoingContext(ctx) // a copy of its own
	if !ok {
		md = make(metadata.MD, 1)
	}
	// Our traceparent replaces the caller's, so a caller's tracestate, which
	// belongs to theirs, goes too; the propagator writes the call's own.
	md.Delete(traceparentKey)
	md.Delete(tracestateKey)
	att.Inject(ts.sctx, mdCarrier(md))
	return metadata.NewOutgoingContext(ctx, md), att, waited
}

const (
	traceparentKey = "traceparent"
	tracestateKey  = "tracestate"
)

// plainTraceparent reports whether propagation.TraceContext would inject
// only a traceparent for the attempt whose sampling context is actx, and
// ctx's outgoing metadata has no trace context to replace.
func plainTraceparent(ctx, actx context.Context) bool {
	sc := trace.SpanContextFromContext(actx)
	return sc.IsValid() && sc.TraceState().Len() == 0 &&
		metadata.ValueFromOutgoingContext(ctx, traceparentKey) == nil &&
		metadata.ValueFromOutgoingContext(ctx, tracestateKey) == nil
}

// attemptOutcome maps an attempt's result to a sampling outcome.
func attemptOutcome(ctx context.Context, err error) sampling.Outcome {
	if err == nil {
		return sampling.Success
	}
	caller := attemptFrom(ctx).callerOr(ctx)
	if caller.Err() != nil {
		return sampling.Canceled
	}
	if localRefusal(err) {
		return sampling.Rejected
	}
	switch classify(caller, ctx, err, nil).outcome {
	case outcomeFailure:
		return sampling.Failure
	case outcomeSuccess:
		if status.Code(err) == 0 {
			return sampling.Success
		}
	}
	return sampling.Neutral
}

// recordRejection tells the call which policy, if any, refused it.
func recordRejection(ts *traceState, err error) {
	if err == nil {
		return
	}
	var p sampling.Policy
	switch {
	case errors.Is(err, retry.ErrBudget):
		p = sampling.PolicyBudget
		ts.metrics.BudgetRefused(ts.sctx, lastNode(err), -1)
	case errors.Is(err, ratelimit.ErrLimited):
		p = sampling.PolicyRateLimit
		ts.metrics.RateLimited(ts.sctx, "")
	case errors.Is(err, ErrNoHealthyNode):
		p = sampling.PolicyFailover
	default:
		if !ts.refused {
			// A refusal by a step of the caller's own, which rampart's
			// attempt-level recording does not see.
			var e *Error
			node := ""
			if errors.As(err, &e) {
				node = e.Node
			}
			ts.refusal(node, err)
		}
		return
	}
	ts.call.Rejected(p, err)
}

// lastNode returns the node of the last attempt of a call the retry step
// gave up on, when its error names it, or "".
func lastNode(err error) string {
	var ex *retry.ExhaustedError
	var e *Error
	if errors.As(err, &ex) && errors.As(ex.Last, &e) {
		return e.Node
	}
	return ""
}

// mdCarrier adapts outgoing metadata to propagation.TextMapCarrier.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
