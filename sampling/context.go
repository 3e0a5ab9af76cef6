package sampling

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ctxKey keys this package's context values.
type ctxKey uint8

const (
	callKey ctxKey = iota + 1
	attemptKey
)

// spanKey is the key under which the trace package stores the current span
// (unexported there). keyProbe learns it at init by watching the lookup
// trace.SpanFromContext makes; nodesWork confirms that a ctxNode is then seen
// by trace.SpanContextFromContext. If the trace package ever changes how it
// looks the span up, nodesWork is false and contexts fall back to
// trace.ContextWithSpan (one allocation more per context).
var (
	spanKey   any
	nodesWork bool
)

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(k any) any {
	if p.key == nil {
		p.key = k
	}
	return nil
}

func init() {
	p := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(p)
	spanKey = p.key
	if spanKey == nil {
		return
	}
	want := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	n := &ctxNode{parent: context.Background(), span: staticSpan{sc: want}}
	nodesWork = trace.SpanContextFromContext(n).Equal(want)
}

// staticSpan is a non-recording span with a fixed span context (init check).
type staticSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s staticSpan) SpanContext() trace.SpanContext { return s.sc }

// ctxNode is a context embedded in a pooled Call or attempt record: it adds
// the call, the attempt and the current span to parent without allocating.
type ctxNode struct {
	parent context.Context
	call   *Call
	att    *attemptRec
	span   trace.Span
}

func (n *ctxNode) Deadline() (time.Time, bool) { return n.parent.Deadline() }
func (n *ctxNode) Done() <-chan struct{}       { return n.parent.Done() }
func (n *ctxNode) Err() error                  { return n.parent.Err() }

func (n *ctxNode) Value(key any) any {
	if k, ok := key.(ctxKey); ok {
		switch {
		case k == callKey && n.call != nil:
			return n.call
		case k == attemptKey && n.att != nil:
			return n.att
		}
	} else if key == spanKey && n.span != nil {
		return n.span
	}
	return n.parent.Value(key)
}

func (n *ctxNode) String() string { return "sampling.callContext" }

// context returns n as a context, or, when ctxNode cannot carry the span
// (see nodesWork), an allocated equivalent.
func (n *ctxNode) context() context.Context {
	if nodesWork {
		return n
	}
	ctx := context.WithValue(n.parent, callKey, n.call)
	if n.att != nil {
		ctx = context.WithValue(ctx, attemptKey, n.att)
	}
	return trace.ContextWithSpan(ctx, n.span)
}

// CallFromContext returns the Call that a context from [Tracer.Start] or
// [Call.StartAttempt] (or one derived from it) belongs to, or nil.
func CallFromContext(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey).(*Call)
	return c
}

// AttemptFromContext returns the Attempt that a context from
// [Call.StartAttempt] (or one derived from it) belongs to.
func AttemptFromContext(ctx context.Context) (Attempt, bool) {
	r, ok := ctx.Value(attemptKey).(*attemptRec)
	if !ok {
		return Attempt{}, false
	}
	return Attempt{r: r, gen: r.gen}, true
}

// pseudoSpan is the non-recording span that a context of an unsampled call
// carries: it reports the call's trace ID and the propagated span ID, with the
// sampled flag unset. It lives inside the pooled Call.
type pseudoSpan struct {
	noop.Span
	call   *Call
	spanID trace.SpanID
}

func (s *pseudoSpan) SpanContext() trace.SpanContext { return s.call.unsampledSC(s.spanID) }

func (s *pseudoSpan) TracerProvider() trace.TracerProvider { return s.call.t.tp }
