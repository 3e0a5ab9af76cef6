package httpmw

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/sampling"
)

type tracerConfig struct {
	t *sampling.Tracer
}

// WithTracer makes the tracing middleware (and the preset) trace and
// measure calls with t: one sampling decision per logical call, every
// attempt a span (exported when the call is sampled or saw an error), a W3C
// traceparent on every attempt. A nil t is ignored; the preset has no
// tracing without it.
func WithTracer(t *sampling.Tracer) Option {
	return func(c *config) {
		if t != nil {
			c.tracer = &tracerConfig{t: t}
		}
	}
}

// Tracing starts one sampling.Call per logical call (see WithTracer). Each
// attempt is recorded with the node it went to and its outcome, and carries
// a traceparent header on a clone of the request's header (the caller's
// header map is never modified). In the canonical order the retry layer
// below starts the attempts (after asking failover for the node); without a
// retry layer below, Tracing makes the single attempt itself.
//
// Span and metric attributes are the method, node, partition, attempt
// number and outcome, and attempt spans carry the response's status code
// (http.response.status_code): never the URL, its query, or a header
// value. The sampling package's pooled contexts never reach the requests
// sent, so resp.Request and its context stay valid for the caller.
//
// Create it with NewTracing (or TracingMiddleware); the zero Tracing is not
// usable. Tracing is safe for concurrent use.
type Tracing struct {
	next       http.RoundTripper
	tracer     *sampling.Tracer
	retryBelow bool
}

var _ http.RoundTripper = (*Tracing)(nil)

// NewTracing returns the tracing middleware around next (nil means
// http.DefaultTransport), tracing with the tracer given by WithTracer (a
// nil tracer traces nothing).
func NewTracing(next http.RoundTripper, opts ...Option) *Tracing {
	return newTracing(next, newConfig(opts))
}

func newTracing(next http.RoundTripper, cfg *config) *Tracing {
	t := &Tracing{next: ensureHTTP(next)}
	if cfg.tracer != nil {
		t.tracer = cfg.tracer.t
	}
	t.retryBelow = retryBelow(t.next)
	return t
}

// TracingMiddleware returns NewTracing bound to opts, for Chain.
func TracingMiddleware(opts ...Option) Middleware {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newTracing(next, cfg) }
}

// retryBelow reports whether a Retry layer, which starts the attempts, sits
// below next's rate-limit layers.
func retryBelow(next http.RoundTripper) bool {
	for {
		switch n := next.(type) {
		case *RateLimit:
			next = n.next
		case *Retry:
			return true
		default:
			return false
		}
	}
}

// RoundTrip traces r as one logical call.
func (t *Tracing) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.tracer == nil {
		return t.next.RoundTrip(r)
	}
	sctx, sc := t.tracer.Start(r.Context(), spanName(r.Method), trace.SpanKindClient)
	c, r, created := joinCall(r)
	prevTrace, prevCtx, prevTP := c.trace, c.tctx, c.plainTP
	_, plainTP := t.tracer.Propagator().(propagation.TraceContext) // the global one may change
	c.trace, c.tctx, c.plainTP = sc, sctx, plainTP
	var (
		resp *http.Response
		err  error
	)
	if t.retryBelow {
		resp, err = t.next.RoundTrip(r)
	} else {
		// A retry loop may sit below, behind the caller's own middleware:
		// it adopts the attempt started here as its first.
		c.attAdopt = true
		resp, err = sendAttempt(c, t.next, r, 0, false)
		c.attAdopt = false
	}
	if c.attOpen { // a layer below left it open
		c.endAttempt(r.Context(), resp, err, 0)
	}
	sc.End(err)
	c.trace, c.tctx, c.plainTP = prevTrace, prevCtx, prevTP
	if created {
		c.finished = true
	}
	return resp, err
}

// spanName is the low-cardinality name of a call: its method when standard.
func spanName(method string) string {
	switch method {
	case "", http.MethodGet:
		return http.MethodGet
	case http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "HTTP"
}

// sendAttempt sends one attempt of the call through next, recording it as a
// sampling attempt when the call is traced. When next is a Failover layer,
// the request is routed first so that the attempt knows its node. A retry
// loop (adopt) makes an attempt Tracing left open for it its own: it ends
// it with this try's outcome, and starts its next tries' attempts itself.
func sendAttempt(c *call, next http.RoundTripper, r *http.Request, waited time.Duration, adopt bool) (*http.Response, error) {
	if c.trace == nil {
		return next.RoundTrip(r)
	}
	if c.attOpen {
		if !adopt || !c.attAdopt {
			return next.RoundTrip(r) // the attempt is a layer's above
		}
		c.attAdopt = false
		resp, err := next.RoundTrip(r)
		c.endAttempt(r.Context(), resp, err, waited)
		return resp, err
	}
	send := next
	if f, ok := next.(*Failover); ok {
		if s := f.service(r); s != nil {
			if err := f.route(s, c, r); err != nil {
				c.trace.Rejected(sampling.PolicyFailover, err)
				return nil, err
			}
			send = f.next
		}
	}
	r = c.beginAttempt(r)
	resp, err := send.RoundTrip(r)
	c.endAttempt(r.Context(), resp, err, waited)
	return resp, err
}

const (
	traceparentKey = "Traceparent"
	tracestateKey  = "Tracestate"
)

// traceparentVal is the traceparent header value of a retry, with the
// bytes behind it; it is written once and never reused.
type traceparentVal struct {
	val [1]string
	buf [55]byte
}

// beginAttempt starts the sampling attempt for r, which the call owns, and
// puts its traceparent on a clone of r's header.
func (c *call) beginAttempt(r *http.Request) *http.Request {
	_, a := c.trace.StartAttempt(c.tctx, r.URL.Host, c.partition)
	c.att, c.attOpen = a, true
	r = c.own(r)
	// A shallow copy: the value slices are shared, read-only, never
	// appended to. maps.Clone copies the table without rehashing.
	h := maps.Clone(r.Header)
	if h == nil {
		h = make(http.Header, 1)
	}
	// Our traceparent replaces the caller's, so a caller's tracestate, which
	// belongs to theirs, goes too; the propagator writes the call's own.
	delete(h, tracestateKey)
	if c.plainTP && a.SpanContext().TraceState().Len() == 0 {
		if !c.tpUsed {
			// The call's own buffer backs the first attempt's value: it
			// is written once and never reused, so no copy is needed.
			c.tpUsed = true
			tp := a.AppendTraceparent(c.tpBuf[:0])
			c.tpVal[0] = unsafe.String(unsafe.SliceData(tp), len(tp))
			h[traceparentKey] = c.tpVal[:]
		} else {
			// A retry's value and its bytes share one allocation.
			tp := new(traceparentVal)
			b := a.AppendTraceparent(tp.buf[:0])
			tp.val[0] = unsafe.String(unsafe.SliceData(b), len(b))
			h[traceparentKey] = tp.val[:]
		}
	} else {
		delete(h, traceparentKey)
		a.Inject(c.tctx, propagation.HeaderCarrier(h))
	}
	r.Header = h
	return r
}

// endAttempt ends the open sampling attempt with the outcome of resp, err;
// ctx is the context of the attempt's request at the layer that sent it.
func (c *call) endAttempt(ctx context.Context, resp *http.Response, err error, waited time.Duration) {
	if !c.attOpen {
		return
	}
	c.attOpen = false
	var o sampling.Outcome
	switch {
	case err == nil:
		switch oc, _ := classifyStatus(resp.StatusCode); {
		case oc == outcomeFailure:
			o = sampling.Failure
		case resp.StatusCode >= 400 || resp.StatusCode == http.StatusNotImplemented:
			o = sampling.Neutral
		default:
			o = sampling.Success
		}
	case c.callerGone(ctx, err):
		o = sampling.Canceled
	case localRejection(err):
		o = sampling.Rejected
	default:
		o = sampling.Failure
	}
	if err == nil && (o != sampling.Success || c.trace.Sampled() || c.trace.Errored()) {
		// Only spans that can be exported carry it: a successful attempt
		// of an unsampled call that saw no error costs nothing more.
		c.att.SetAttributes(attrStatusCode.Int(resp.StatusCode))
	}
	c.att.End(o, err, waited)
}

// attrStatusCode is OpenTelemetry's HTTP response status code attribute.
const attrStatusCode = attribute.Key("http.response.status_code")

// bulkheadWaited records in the call's metrics, if any, that r waited d
// for a slot of its node's bulkhead.
func bulkheadWaited(r *http.Request, d time.Duration) {
	if c, _ := r.Context().Value(callKey{}).(*call); c != nil {
		c.trace.Metrics().BulkheadWait(c.tctx, r.URL.Host, d) // nil-safe
	}
}

// rateLimitWaited records in the call's metrics, if any, that r waited d
// for the rate limiter.
func rateLimitWaited(r *http.Request, d time.Duration) {
	if c, _ := r.Context().Value(callKey{}).(*call); c != nil {
		c.trace.Metrics().RateLimitWait(c.tctx, "", d) // nil-safe
	}
}

// rejected tells the call's tracer, if any, that policy p refused r.
func rejected(r *http.Request, err error) {
	c, _ := r.Context().Value(callKey{}).(*call)
	if c == nil || c.trace == nil {
		return
	}
	var p sampling.Policy
	switch {
	case errors.Is(err, breaker.ErrOpen):
		p = sampling.PolicyBreaker
	case errors.Is(err, bulkhead.ErrFull):
		p = sampling.PolicyBulkhead
		c.trace.Metrics().BulkheadRejected(c.tctx, r.URL.Host)
	case errors.Is(err, ratelimit.ErrLimited):
		p = sampling.PolicyRateLimit
		c.trace.Metrics().RateLimited(c.tctx, "")
	default:
		return
	}
	c.trace.Rejected(p, err)
}
