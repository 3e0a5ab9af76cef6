package sampling

import (
	"context"
	"encoding/hex"
	"net"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of rampart's tracer and meter.
const ScopeName = "github.com/rampart-go/rampart/sampling"

// DefaultRatio is the share of successful calls traced when no [WithRatio]
// is given.
const DefaultRatio = 0.01

// Attribute keys and the event name this package sets on spans. The
// transports add their own semantic-convention attributes with
// [Call.SetAttributes] and [Attempt.SetAttributes].
const (
	AttrServerAddress    = attribute.Key("server.address")
	AttrServerPort       = attribute.Key("server.port")
	AttrPartition        = attribute.Key("rampart.partition")
	AttrOutcome          = attribute.Key("rampart.outcome")
	AttrPolicy           = attribute.Key("rampart.policy")
	AttrAttempt          = attribute.Key("rampart.attempt")
	AttrAttempts         = attribute.Key("rampart.attempts")
	AttrBackoffMS        = attribute.Key("rampart.backoff_ms")
	AttrPromoted         = attribute.Key("rampart.promoted")
	AttrSyntheticParent  = attribute.Key("rampart.synthetic_parent")
	AttrPropagatedSpanID = attribute.Key("rampart.propagated_span_id")
	EventRejected        = "rampart.rejected"
)

const (
	keyExceptionType    = attribute.Key("exception.type")
	keyExceptionMessage = attribute.Key("exception.message")
	eventException      = "exception"
	inlineAttempts      = 8
	maxRetainedAttrs    = 64
)

// Option configures a [Tracer]. Options given nil values are ignored.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	tp        trace.TracerProvider
	prop      propagation.TextMapPropagator
	mp        metric.MeterProvider
	ratio     float64
	resendKey attribute.Key
	errFmt    func(error) string
	now       func() time.Time
	noPool    bool
}

// WithTracerProvider sets the provider spans are created with. Default:
// otel.GetTracerProvider(). Its sampler must keep spans with a sampled parent
// (see the package doc).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	})
}

// WithPropagator sets the propagator attempts inject with. Default: otel's
// global propagator as it is when an attempt injects
// (otel.GetTextMapPropagator()), or propagation.TraceContext{} while the
// global one injects nothing.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		if p != nil {
			c.prop = p
		}
	})
}

// WithMeterProvider sets the provider of the call and attempt metrics the
// Tracer records (see [Metrics]). Default: otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	})
}

// WithRatio sets the share of calls head-sampled, in [0, 1]; values outside
// are clamped, NaN means 0. Default: [DefaultRatio] (1%). Errored calls are
// exported whatever the ratio.
func WithRatio(r float64) Option {
	return optionFunc(func(c *config) { c.ratio = clampRatio(r) })
}

// WithResendCountKey names the attribute that carries attempt number − 1 on
// the spans of retries (attempts after the first), for example
// "http.request.resend_count". Default: none; rampart.attempt (1-based) is
// always set.
func WithResendCountKey(k attribute.Key) Option {
	return optionFunc(func(c *config) { c.resendKey = k })
}

// WithErrorFormatter sets how an error becomes a span status description and
// exception message. Transports use it to keep URLs and other unbounded or
// sensitive text out of spans. Default: err.Error().
func WithErrorFormatter(f func(error) string) Option {
	return optionFunc(func(c *config) {
		if f != nil {
			c.errFmt = f
		}
	})
}

// WithClock sets the clock for span times and durations. Default: the
// system clock, read in full (time.Now) once per call and monotonically
// (time.Since) for the call's later events.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) {
		if now != nil {
			c.now = now
		}
	})
}

// WithoutPooling makes every Call a fresh allocation that is never reused, so
// the contexts of a call stay valid after [Call.End]. Default: pooled.
func WithoutPooling() Option {
	return optionFunc(func(c *config) { c.noPool = true })
}

// Tracer starts calls and attempts, makes the head sampling decision and
// exports the calls that are sampled or errored (see the package doc).
//
// Create one with [NewTracer]; the zero value is not usable, but a nil
// *Tracer is: it starts nil Calls, on which every method does nothing.
// [Tracer.Start] is the method every transport calls. A Tracer is safe for
// concurrent use.
type Tracer struct {
	tracer    trace.Tracer
	tp        trace.TracerProvider
	prop      propagation.TextMapPropagator
	ratio     float64
	bound     bound
	metrics   *Metrics
	resendKey attribute.Key
	errFmt    func(error) string
	clock     func() time.Time // nil: the system clock
	noPool    bool
	pool      sync.Pool
}

// now reads the clock. With the system clock it is time.Now.
func (t *Tracer) now() time.Time {
	if t.clock != nil {
		return t.clock()
	}
	return time.Now()
}

// nowAfter reads the clock for an event of a call that started at start.
// With the system clock it reads only the monotonic clock (half the cost of
// time.Now) and derives the wall time from start, so the times of one call
// are exact relative to each other.
func (t *Tracer) nowAfter(start time.Time) time.Time {
	if t.clock != nil {
		return t.clock()
	}
	return start.Add(time.Since(start))
}

// NewTracer returns a Tracer configured by opts.
func NewTracer(opts ...Option) *Tracer {
	cfg := config{ratio: DefaultRatio}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	if cfg.prop == nil {
		cfg.prop = new(globalPropagator)
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.errFmt == nil {
		cfg.errFmt = error.Error
	}
	t := &Tracer{
		tracer:    cfg.tp.Tracer(ScopeName),
		tp:        cfg.tp,
		prop:      cfg.prop,
		ratio:     cfg.ratio,
		bound:     ratioBound(cfg.ratio),
		resendKey: cfg.resendKey,
		errFmt:    cfg.errFmt,
		clock:     cfg.now,
		noPool:    cfg.noPool,
	}
	m, err := NewMetrics(cfg.mp)
	if err != nil {
		otel.Handle(err)
	}
	t.metrics = m
	t.pool.New = func() any { return t.newCall() }
	return t
}

// Ratio returns the configured head-sampling ratio.
func (t *Tracer) Ratio() float64 {
	if t == nil {
		return 0
	}
	return t.ratio
}

// Metrics returns the Metrics the Tracer records calls and attempts on, for
// the transports to record their policy measurements on the same
// instruments. It is nil when t is nil.
func (t *Tracer) Metrics() *Metrics {
	if t == nil {
		return nil
	}
	return t.metrics
}

// Propagator returns the propagator attempts inject with now: the one
// given with WithPropagator or, without one, otel's global propagator as it
// is at this moment (propagation.TraceContext{} while it injects nothing).
func (t *Tracer) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return propagation.TraceContext{}
	}
	if g, ok := t.prop.(*globalPropagator); ok {
		return g.current()
	}
	return t.prop
}

// globalPropagator is the propagator of a Tracer made without one: otel's
// global propagator at each use, not at the Tracer's making (programs often
// make their tracers before they set up telemetry), or
// propagation.TraceContext{} while the global one injects nothing, as it
// does until the program sets one.
type globalPropagator struct {
	last atomic.Pointer[resolvedPropagator] // the latest global seen
}

// resolvedPropagator is what a global propagator resolves to.
type resolvedPropagator struct{ global, use propagation.TextMapPropagator }

// current returns the propagator to use now. It asks the global one for its
// fields only when the global propagator changed since the last call.
func (g *globalPropagator) current() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if r := g.last.Load(); r != nil && samePropagator(r.global, p) {
		return r.use
	}
	use := p
	if len(p.Fields()) == 0 {
		use = propagation.TraceContext{}
	}
	g.last.Store(&resolvedPropagator{global: p, use: use})
	return use
}

// samePropagator reports whether a and b are the same stored interface
// value: the same dynamic type and the same data word. otel hands back the
// interface value it stores, so this holds from one call to the next for any
// propagator, where == would panic on one that holds a slice (the composite
// propagator is a slice). Equal values stored twice compare different,
// which costs one more Fields call; a value held in the cache is kept alive,
// so its data word cannot be reused for another.
func samePropagator(a, b propagation.TextMapPropagator) bool {
	return *(*[2]unsafe.Pointer)(unsafe.Pointer(&a)) == *(*[2]unsafe.Pointer)(unsafe.Pointer(&b))
}

func (g *globalPropagator) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	g.current().Inject(ctx, carrier)
}

func (g *globalPropagator) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return g.current().Extract(ctx, carrier)
}

func (g *globalPropagator) Fields() []string { return g.current().Fields() }

func (t *Tracer) newCall() *Call {
	c := &Call{t: t}
	for i := range c.att {
		c.att[i].call = c
		c.att[i].pseudo.call = c
	}
	c.pseudo.call = c
	return c
}

// Call is one logical call: the head decision, its attempts and its outcome.
// Start one with [Tracer.Start] and finish it with [Call.End]; never use it,
// nor the contexts of its Start and StartAttempt, after End. Its methods are
// not safe for concurrent use; a nil *Call does nothing.
type Call struct {
	t       *Tracer
	gen     uint32
	name    string
	kind    trace.SpanKind
	parent  trace.SpanContext
	traceID trace.TraceID
	spanID  trace.SpanID
	live    trace.Span
	start   time.Time
	end     time.Time
	errored bool
	policy  Policy
	nAtt    int
	att     [inlineAttempts]attemptRec
	extra   []*attemptRec
	attrs   []indexedAttr
	events  []rejection
	node    ctxNode
	pseudo  pseudoSpan
	// mKey and mOpts cache the attempt metric options last used by this
	// (pooled) Call; they survive reuse, as they belong to t.metrics.
	mKey  attrKey
	mOpts *measureOpts
	// Option slices export passes to the tracer, kept here so that each
	// span it builds does not allocate them; cleared after use.
	startOpts [3]trace.SpanStartOption
	endOpts   [1]trace.SpanEndOption
}

// indexedAttr is an attribute of the call (n == 0) or of attempt n.
type indexedAttr struct {
	n  int
	kv attribute.KeyValue
}

type rejection struct {
	at     time.Time
	policy Policy
	err    error
}

// attemptRec is one entry of the attempt log.
type attemptRec struct {
	call      *Call
	gen       uint32 // the call's generation when the attempt started
	n         int
	node      string
	partition int
	start     time.Time
	end       time.Time
	backoff   time.Duration
	err       error
	outcome   Outcome
	ended     bool
	spanID    trace.SpanID
	live      trace.Span
	pseudo    pseudoSpan
	ctx       ctxNode
	inj       ctxNode
}

// Start starts a logical call named name (low cardinality: "HTTP GET",
// "orders.Orders/Get") of the given span kind, with attributes attrs, and
// makes the head sampling decision. The returned context carries the call
// (see [CallFromContext]) and its span context; pass it down the chain.
//
// An unsampled call allocates nothing. Start on a nil Tracer returns ctx and
// a nil Call.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, *Call) {
	if t == nil {
		return ctx, nil
	}
	var c *Call
	if t.noPool {
		c = t.newCall()
	} else {
		c = t.pool.Get().(*Call)
	}
	c.name, c.kind = name, kind
	c.start = t.now()
	c.parent = trace.SpanContextFromContext(ctx)
	if c.parent.IsValid() {
		c.traceID = c.parent.TraceID()
	} else {
		c.traceID = newTraceID()
	}
	c.node = ctxNode{parent: ctx, call: c}
	if (c.parent.IsSampled() || t.bound.sampled(c.traceID)) && c.startLive(ctx, attrs) {
		c.node.span = c.live
	} else {
		c.spanID = newSpanID()
		c.pseudo.spanID = c.spanID
		c.node.span = &c.pseudo
		c.addAttrs(0, attrs)
	}
	return c.node.context(), c
}

// startLive starts the real logical span of a head-sampled call. It reports
// false if the provider did not record it (its sampler dropped it).
func (c *Call) startLive(ctx context.Context, attrs []attribute.KeyValue) bool {
	kv := make([]attribute.KeyValue, 0, len(attrs)+1)
	kv = append(kv, attrs...)
	pctx := ctx
	switch {
	case !c.parent.IsValid():
		pctx = trace.ContextWithRemoteSpanContext(ctx, c.exportParent(true))
		kv = append(kv, AttrSyntheticParent.Bool(true))
	case !c.parent.IsSampled():
		pctx = trace.ContextWithSpanContext(ctx, c.parent.WithTraceFlags(c.parent.TraceFlags()|trace.FlagsSampled))
	}
	_, sp := c.t.tracer.Start(pctx, c.name, trace.WithSpanKind(c.kind),
		trace.WithTimestamp(c.start), trace.WithAttributes(kv...))
	if !sp.IsRecording() {
		sp.End()
		return false
	}
	c.live = sp
	return true
}

// exportParent is the sampled span context exported spans of c hang from:
// the caller's parent when there is one, else a synthetic remote parent.
func (c *Call) exportParent(synthetic bool) trace.SpanContext {
	if !synthetic {
		return c.parent.WithTraceFlags(c.parent.TraceFlags() | trace.FlagsSampled)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    c.traceID,
		SpanID:     newSpanID(),
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
}

// unsampledSC is the span context propagated for span ID id of an unsampled
// call: the call's trace ID, the parent's trace state and flags. A call is
// unsampled under a sampled parent only when the provider recorded nothing
// (a noop provider, the global default, or a sampler that ignores the
// parent): the parent's decision still goes on downstream, as the
// OpenTelemetry API passes it through without an SDK, so that the services
// below keep the trace the caller sampled.
func (c *Call) unsampledSC(id trace.SpanID) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    c.traceID,
		SpanID:     id,
		TraceFlags: c.parent.TraceFlags(),
		TraceState: c.parent.TraceState(),
	})
}

func (c *Call) addAttrs(n int, kv []attribute.KeyValue) {
	for _, a := range kv {
		c.attrs = append(c.attrs, indexedAttr{n: n, kv: a})
	}
}

// Sampled reports whether the call was head-sampled and has live spans.
func (c *Call) Sampled() bool { return c != nil && c.live != nil }

// Metrics returns the metrics of the call's Tracer, nil for a nil Call or
// a Tracer without metrics.
func (c *Call) Metrics() *Metrics {
	if c == nil {
		return nil
	}
	return c.t.metrics
}

// Errored reports whether the call has seen an error so far.
func (c *Call) Errored() bool { return c != nil && c.errored }

// TraceID returns the call's trace ID (the parent's, or the one rampart
// generated).
func (c *Call) TraceID() trace.TraceID {
	if c == nil {
		return trace.TraceID{}
	}
	return c.traceID
}

// SetAttributes adds attributes to the logical span. Keep them bounded:
// never a URL path, query or header value.
func (c *Call) SetAttributes(kv ...attribute.KeyValue) {
	if c == nil || len(kv) == 0 {
		return
	}
	if c.live != nil {
		c.live.SetAttributes(slices.Clone(kv)...)
		return
	}
	c.addAttrs(0, kv)
}

// Rejected records that policy p refused the call or one of its attempts,
// with err as the reason. It makes the call errored even if no attempt was
// made, and adds a rampart.rejected event to the logical span.
func (c *Call) Rejected(p Policy, err error) {
	if c == nil {
		return
	}
	c.errored = true
	c.policy = p
	at := c.t.nowAfter(c.start)
	if c.live != nil {
		c.live.AddEvent(EventRejected, trace.WithTimestamp(at), trace.WithAttributes(c.rejectionAttrs(p, err)...))
		return
	}
	c.events = append(c.events, rejection{at: at, policy: p, err: err})
}

func (c *Call) rejectionAttrs(p Policy, err error) []attribute.KeyValue {
	kv := []attribute.KeyValue{AttrPolicy.String(p.String())}
	if err != nil {
		kv = append(kv, keyExceptionMessage.String(c.t.errFmt(err)))
	}
	return kv
}

// Attempt is a handle on one attempt of a Call, returned by
// [Call.StartAttempt]. It is a small value; copy it freely. Once its Call has
// ended, every method does nothing. The zero Attempt does nothing.
type Attempt struct {
	r   *attemptRec
	gen uint32
}

func (a Attempt) rec() *attemptRec {
	if a.r == nil || a.r.call.gen != a.gen {
		return nil
	}
	return a.r
}

// StartAttempt starts the next attempt of c on node (an address from the
// topology map, "ip" or "ip:port") and partition (its index; −1 if the call is
// not partitioned). The returned context descends from ctx and carries the
// attempt's span context and the attempt (see [AttemptFromContext]); pass it
// to the layers below and inject its trace context with [Attempt.Inject].
func (c *Call) StartAttempt(ctx context.Context, node string, partition int) (context.Context, Attempt) {
	if c == nil {
		return ctx, Attempt{}
	}
	r := c.newRec()
	if r.n > 1 { // a retry: an earlier attempt did not succeed
		c.errored = true
	}
	r.node, r.partition = node, partition
	r.start = c.t.nowAfter(c.start)
	r.ctx = ctxNode{parent: ctx, call: c, att: r}
	if c.live != nil {
		pctx := ctx
		if CallFromContext(ctx) != c {
			pctx = trace.ContextWithSpan(ctx, c.live)
		}
		_, r.live = c.t.tracer.Start(pctx, c.name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithTimestamp(r.start), trace.WithAttributes(c.attemptStartAttrs(r)...))
		r.ctx.span = r.live
	} else {
		r.spanID = newSpanID()
		r.pseudo.spanID = r.spanID
		r.ctx.span = &r.pseudo
	}
	return r.ctx.context(), Attempt{r: r, gen: c.gen}
}

func (c *Call) newRec() *attemptRec {
	c.nAtt++
	var r *attemptRec
	if c.nAtt <= inlineAttempts {
		r = &c.att[c.nAtt-1]
	} else {
		r = &attemptRec{call: c}
		r.pseudo.call = c
		c.extra = append(c.extra, r)
	}
	r.n, r.gen = c.nAtt, c.gen
	return r
}

func (c *Call) recAt(i int) *attemptRec {
	if i < inlineAttempts {
		return &c.att[i]
	}
	return c.extra[i-inlineAttempts]
}

func (c *Call) attemptStartAttrs(r *attemptRec) []attribute.KeyValue {
	return c.appendAttemptStartAttrs(make([]attribute.KeyValue, 0, 6), r)
}

// appendAttemptStartAttrs appends the attributes an attempt span starts
// with to kv.
func (c *Call) appendAttemptStartAttrs(kv []attribute.KeyValue, r *attemptRec) []attribute.KeyValue {
	kv = appendNodeAttrs(kv, r.node, r.partition)
	kv = append(kv, AttrAttempt.Int(r.n))
	if c.t.resendKey != "" && r.n > 1 {
		kv = append(kv, c.t.resendKey.Int(r.n-1))
	}
	return kv
}

func (c *Call) attemptEndAttrs(r *attemptRec) []attribute.KeyValue {
	return appendAttemptEndAttrs(make([]attribute.KeyValue, 0, 2), r)
}

// appendAttemptEndAttrs appends the attributes an attempt span ends with to
// kv.
func appendAttemptEndAttrs(kv []attribute.KeyValue, r *attemptRec) []attribute.KeyValue {
	kv = append(kv, AttrOutcome.String(r.outcome.String()))
	if r.backoff > 0 {
		kv = append(kv, AttrBackoffMS.Float64(float64(r.backoff)/float64(time.Millisecond)))
	}
	return kv
}

// splitNode splits "host:port" or "[v6]:port"; a bare IP has port 0.
func splitNode(node string) (string, int) {
	host, p, err := net.SplitHostPort(node)
	if err != nil {
		return node, 0
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return host, 0
	}
	return host, port
}

// Number returns the attempt's number, 1 for the first try.
func (a Attempt) Number() int {
	if r := a.rec(); r != nil {
		return r.n
	}
	return 0
}

// SpanContext returns the span context the attempt propagates.
func (a Attempt) SpanContext() trace.SpanContext {
	if r := a.rec(); r != nil {
		return r.ctx.span.SpanContext()
	}
	return trace.SpanContext{}
}

// Inject writes the attempt's trace context into carrier with the Tracer's
// propagator; ctx supplies anything else the propagator reads (baggage) and
// may be nil. Call it once per attempt, before sending. It allocates only what
// the propagator does (propagation.TraceContext: the header value).
func (a Attempt) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	r := a.rec()
	if r == nil {
		return
	}
	if ctx == nil {
		ctx = r.ctx.parent
	}
	r.inj = ctxNode{parent: ctx, call: r.call, att: r, span: r.ctx.span}
	r.call.t.prop.Inject(r.inj.context(), carrier)
	r.inj = ctxNode{}
}

// AppendTraceparent appends the attempt's W3C traceparent value
// ("00-<trace-id>-<span-id>-<flags>") to dst, allocating nothing when dst has
// room, for transports that manage header memory themselves.
func (a Attempt) AppendTraceparent(dst []byte) []byte {
	r := a.rec()
	if r == nil {
		return dst
	}
	sc := r.ctx.span.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, flags[:])
}

// SetNode sets the node ("host:port") and partition (-1: none) of an
// attempt started before they were known: a layer that routes requests
// below the one that started the attempt. The attempt's span and metrics
// then name them. It does nothing once the attempt has ended, and costs
// nothing when they are unchanged. On a head-sampled attempt, whose span is
// live, attributes can be replaced but not removed: a port or partition
// given at StartAttempt stays on the span when the new node has none (the
// metrics and a span exported after the fact name only the new ones). Give
// StartAttempt no node rather than a guess.
func (a Attempt) SetNode(node string, partition int) {
	r := a.rec()
	if r == nil || r.ended || (r.node == node && r.partition == partition) {
		return
	}
	r.node, r.partition = node, partition
	if r.live != nil {
		r.live.SetAttributes(appendNodeAttrs(nil, node, partition)...)
	}
}

// appendNodeAttrs appends the attributes that name an attempt's node and
// partition (-1: none) to kv.
func appendNodeAttrs(kv []attribute.KeyValue, node string, partition int) []attribute.KeyValue {
	host, port := splitNode(node)
	if host != "" {
		kv = append(kv, AttrServerAddress.String(host))
	}
	if port > 0 {
		kv = append(kv, AttrServerPort.Int(port))
	}
	if partition >= 0 {
		kv = append(kv, AttrPartition.Int(partition))
	}
	return kv
}

// SetAttributes adds attributes to the attempt's span (for example a status
// code). Keep them bounded: never a URL path, query or header value.
func (a Attempt) SetAttributes(kv ...attribute.KeyValue) {
	r := a.rec()
	if r == nil || len(kv) == 0 {
		return
	}
	if r.live != nil {
		r.live.SetAttributes(slices.Clone(kv)...)
		return
	}
	r.call.addAttrs(r.n, kv)
}

// End ends the attempt with outcome and err (nil on success), and
// backoffWaited, the time the retry policy waited before this attempt. A
// Failure or Rejected outcome makes the call errored. Ending an attempt twice
// does nothing.
func (a Attempt) End(outcome Outcome, err error, backoffWaited time.Duration) {
	r := a.rec()
	if r == nil || r.ended {
		return
	}
	r.call.endAttempt(r, outcome, err, backoffWaited)
}

func (c *Call) endAttempt(r *attemptRec, outcome Outcome, err error, backoff time.Duration) {
	r.end = c.t.nowAfter(c.start)
	r.outcome, r.err, r.backoff, r.ended = outcome, err, backoff, true
	if outcome.errors() {
		c.errored = true
	}
	if r.live != nil {
		r.live.SetAttributes(c.attemptEndAttrs(r)...)
		c.setError(r.live, r, r.end)
		r.live.End(trace.WithTimestamp(r.end))
	}
	if m := c.t.metrics; m != nil {
		k := attemptAttrKey(r.node, r.partition, outcome)
		if c.mOpts == nil || c.mKey != k {
			c.mKey, c.mOpts = k, m.opts(k)
		}
		c.mOpts.attempts.Add(1)
		if r.n > 1 {
			m.Retry(&r.ctx, r.node, r.partition)
		}
	}
}

// setError marks an attempt span failed, with an exception event.
func (c *Call) setError(sp trace.Span, r *attemptRec, at time.Time) {
	if !r.outcome.errors() {
		return
	}
	desc := r.outcome.String()
	if r.err != nil {
		desc = c.t.errFmt(r.err)
		sp.AddEvent(eventException, trace.WithTimestamp(at), trace.WithAttributes(
			keyExceptionType.String(errType(r.err)), keyExceptionMessage.String(desc)))
	}
	sp.SetStatus(codes.Error, desc)
}

func errType(err error) string { return reflect.TypeOf(err).String() }

// End ends the call with err, the error returned to the caller (nil on
// success), records the call metrics, and exports the call if it was
// head-sampled or errored. A non-nil err makes the call errored. Attempts
// still open are ended first (Failure with err, or Success). After End, c
// and its contexts belong to later calls: never use them again.
func (c *Call) End(err error) {
	if c == nil {
		return
	}
	t := c.t
	for i := 0; i < c.nAtt; i++ {
		if r := c.recAt(i); !r.ended {
			o := Success
			if err != nil {
				o = Failure
			}
			c.endAttempt(r, o, err, 0)
		}
	}
	c.end = t.nowAfter(c.start)
	if err != nil {
		c.errored = true
	}
	outcome := c.outcome(err)
	switch {
	case c.live != nil:
		c.live.SetAttributes(c.callEndAttrs(outcome)...)
		if c.errored {
			c.live.SetStatus(codes.Error, c.description(err))
		}
		c.live.End(trace.WithTimestamp(c.end))
	case c.errored:
		c.export(err, outcome)
	}
	if m := t.metrics; m != nil {
		m.Call(&c.node, outcome, c.policy, c.end.Sub(c.start))
	}
	if t.noPool {
		// Never reused: its contexts keep what they carry; only its
		// Attempt handles, and those its contexts yield, become void.
		c.gen++
		return
	}
	c.reset()
	t.pool.Put(c)
}

func (c *Call) outcome(err error) Outcome {
	var last *attemptRec
	if c.nAtt > 0 {
		last = c.recAt(c.nAtt - 1)
	}
	switch {
	case err == nil && last != nil && (last.outcome == Neutral || last.outcome == Failure):
		// The caller got the last attempt's response (a 4xx, or a 5xx
		// nothing retried): the call's outcome is that attempt's.
		return last.outcome
	case err == nil:
		return Success
	case c.node.parent.Err() != nil:
		return Canceled
	case c.policy != NoPolicy && (last == nil || last.outcome == Rejected):
		return Rejected
	}
	return Failure
}

func (c *Call) callEndAttrs(o Outcome) []attribute.KeyValue {
	return c.appendCallEndAttrs(make([]attribute.KeyValue, 0, 3), o)
}

// appendCallEndAttrs appends the attributes the logical span ends with to
// kv.
func (c *Call) appendCallEndAttrs(kv []attribute.KeyValue, o Outcome) []attribute.KeyValue {
	kv = append(kv, AttrOutcome.String(o.String()), AttrAttempts.Int(c.nAtt))
	if c.policy != NoPolicy {
		kv = append(kv, AttrPolicy.String(c.policy.String()))
	}
	return kv
}

// description is the logical span's status description.
func (c *Call) description(err error) string {
	if err != nil {
		return c.t.errFmt(err)
	}
	for i := 0; i < c.nAtt; i++ {
		if r := c.recAt(i); r.outcome.errors() {
			if r.err != nil {
				return "attempt " + strconv.Itoa(r.n) + ": " + c.t.errFmt(r.err)
			}
			return "attempt " + strconv.Itoa(r.n) + ": " + r.outcome.String()
		}
	}
	if c.policy != NoPolicy {
		return "rejected by " + c.policy.String()
	}
	return "error"
}

// export builds the spans of an unsampled, errored call after the fact.
func (c *Call) export(err error, outcome Outcome) {
	tr := c.t.tracer
	synthetic := !c.parent.IsValid()
	pctx := trace.ContextWithRemoteSpanContext(c.node.parent, c.exportParent(synthetic))
	// One allocation holds the start attributes of every span, each span
	// its own region (a tracer may keep what it is given). The bound: 5
	// for the logical span, 8 per attempt, plus every stored attribute.
	buf := make([]attribute.KeyValue, 0, len(c.attrs)+5+8*c.nAtt)
	kv := append(buf, AttrPromoted.Bool(true))
	if synthetic {
		kv = append(kv, AttrSyntheticParent.Bool(true))
	}
	kv = c.appendStored(kv, 0)
	kv = c.appendCallEndAttrs(kv, outcome)
	lctx, ls := tr.Start(pctx, c.name, c.spanOpts(c.kind, c.start, kv)...)
	buf = kv[len(kv):]
	for _, e := range c.events {
		ls.AddEvent(EventRejected, trace.WithTimestamp(e.at), trace.WithAttributes(c.rejectionAttrs(e.policy, e.err)...))
	}
	for i := 0; i < c.nAtt; i++ {
		r := c.recAt(i)
		kv = c.appendAttemptStartAttrs(buf[:0], r)
		kv = append(kv, AttrPropagatedSpanID.String(r.spanID.String()))
		kv = c.appendStored(kv, r.n)
		kv = appendAttemptEndAttrs(kv, r)
		_, as := tr.Start(lctx, c.name, c.spanOpts(trace.SpanKindClient, r.start, kv)...)
		buf = kv[len(kv):]
		c.setError(as, r, r.end)
		as.End(c.endAt(r.end)...)
	}
	ls.SetStatus(codes.Error, c.description(err))
	ls.End(c.endAt(c.end)...)
	c.startOpts = [len(c.startOpts)]trace.SpanStartOption{}
	c.endOpts = [len(c.endOpts)]trace.SpanEndOption{}
}

// spanOpts returns the start options of an exported span in c's own
// storage: kind, start time and attributes kv (passed with no spare
// capacity).
func (c *Call) spanOpts(kind trace.SpanKind, start time.Time, kv []attribute.KeyValue) []trace.SpanStartOption {
	c.startOpts = [...]trace.SpanStartOption{trace.WithSpanKind(kind),
		trace.WithTimestamp(start), trace.WithAttributes(kv[:len(kv):len(kv)]...)}
	return c.startOpts[:]
}

// endAt returns the end option of an exported span in c's own storage.
func (c *Call) endAt(end time.Time) []trace.SpanEndOption {
	c.endOpts[0] = trace.WithTimestamp(end)
	return c.endOpts[:]
}

func (c *Call) appendStored(kv []attribute.KeyValue, n int) []attribute.KeyValue {
	for _, a := range c.attrs {
		if a.n == n {
			kv = append(kv, a.kv)
		}
	}
	return kv
}

// reset clears c for reuse and invalidates its Attempt handles.
func (c *Call) reset() {
	for i := 0; i < c.nAtt && i < inlineAttempts; i++ {
		r := &c.att[i]
		*r = attemptRec{call: c}
		r.pseudo.call = c
	}
	c.gen++
	c.nAtt = 0
	c.extra = nil
	if cap(c.attrs) > maxRetainedAttrs {
		c.attrs = nil
	} else {
		clear(c.attrs)
		c.attrs = c.attrs[:0]
	}
	if cap(c.events) > maxRetainedAttrs {
		c.events = nil
	} else {
		clear(c.events)
		c.events = c.events[:0]
	}
	c.name = ""
	c.parent = trace.SpanContext{}
	c.live = nil
	c.errored = false
	c.policy = NoPolicy
	c.node = ctxNode{}
}
