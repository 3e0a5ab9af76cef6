package sampling

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metric attribute keys. Values are bounded: nodes come from the topology map,
// partitions are indexes, policies and outcomes are enums.
const (
	AttrNode         = attribute.Key("rampart.node")
	AttrFromNode     = attribute.Key("rampart.from_node")
	AttrToNode       = attribute.Key("rampart.to_node")
	AttrFromState    = attribute.Key("rampart.breaker.from_state")
	AttrToState      = attribute.Key("rampart.breaker.to_state")
	attrOverflowFlag = attribute.Key("otel.metric.overflow")
)

// MaxAttributeSets caps the distinct attribute sets a Metrics caches. Past
// the cap, measurements carry the single set {otel.metric.overflow=true}, so a
// caller passing unbounded values cannot grow memory without limit.
const MaxAttributeSets = 4096

var attributeSetCap = MaxAttributeSets

// Breaker states as recorded by [Metrics.BreakerState] and
// [Metrics.BreakerTransition]; they equal gobreaker's State values.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

var breakerStateNames = [...]string{"closed", "half-open", "open"}

func breakerStateName(s int) string {
	if s >= 0 && s < len(breakerStateNames) {
		return breakerStateNames[s]
	}
	return "unknown"
}

// durationBuckets are the explicit bounds, in seconds, of the duration
// histograms (those of the HTTP client semantic conventions).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Metrics records rampart's measurements through the OpenTelemetry metric
// API. Every method takes the context of the call (for exemplars), records
// nothing on a nil *Metrics, and allocates nothing once the attribute set it
// needs has been built (the first measurement of each combination). A node
// of "" or a partition < 0 leaves that attribute out.
//
// The two counters recorded for every call, rampart.calls and
// rampart.attempts, are asynchronous (observable) counters: a measurement is
// one atomic addition to a total kept per attribute set, and the totals are
// reported when the reader collects. They carry no exemplars; the exemplars
// of a call are on rampart.call.duration, whose count also equals the number
// of calls. Every other instrument is synchronous. The wait histograms
// count only calls that did wait: the transports record nothing for a call
// that found a free bulkhead slot or a token at once.
//
// Instruments (unit in brackets):
//
//	rampart.calls                      counter    outcome, policy (observable)
//	rampart.call.duration              histogram  [s] outcome, policy
//	rampart.attempts                   counter    node, partition, outcome (observable)
//	rampart.retries                    counter    node, partition
//	rampart.retry_budget.refusals      counter    node, partition
//	rampart.breaker.state              gauge      node (0 closed, 1 half-open, 2 open)
//	rampart.breaker.transitions        counter    node, from_state, to_state
//	rampart.bulkhead.rejections        counter    node
//	rampart.bulkhead.wait.duration     histogram  [s] node
//	rampart.ratelimit.rejections       counter    node
//	rampart.ratelimit.wait.duration    histogram  [s] node
//	rampart.failovers                  counter    partition, from_node, to_node
//
// Create one with [NewMetrics]. A Metrics is safe for concurrent use.
type Metrics struct {
	calls, attempts                     metric.Int64ObservableCounter
	retries, budget                     metric.Int64Counter
	transitions, bhRejected, rlRejected metric.Int64Counter
	failovers                           metric.Int64Counter
	breakerState                        metric.Int64Gauge
	callDuration, bhWait, rlWait        metric.Float64Histogram
	mu                                  sync.Mutex // serialises writers of sets
	sets                                atomic.Pointer[map[attrKey]*measureOpts]
	overflow                            *measureOpts
	callOpts                            [len(outcomeNames)][len(policyNames)]*measureOpts
	provider                            metric.MeterProvider
}

// Provider returns the MeterProvider m's instruments come from. Two Metrics
// of one provider record into the same instruments.
func (m *Metrics) Provider() metric.MeterProvider {
	if m == nil {
		return nil
	}
	return m.provider
}

// attrKey identifies one attribute set; mask says which fields are present.
type attrKey struct {
	mask      uint8
	outcome   Outcome
	policy    Policy
	from, to  int8
	partition int
	node      string
	node2     string
}

const (
	mNode uint8 = 1 << iota
	mPartition
	mPolicy
	mOutcome
	mStates
	mFailover
)

// measureOpts are the pre-built option slices for one attribute set, passed
// with ... so that recording allocates nothing, and the totals of the
// observable counters for that set.
type measureOpts struct {
	add     []metric.AddOption
	record  []metric.RecordOption
	observe []metric.ObserveOption

	calls    atomic.Int64 // rampart.calls
	attempts atomic.Int64 // rampart.attempts
}

func newMeasureOpts(set attribute.Set) *measureOpts {
	o := metric.WithAttributeSet(set)
	return &measureOpts{add: []metric.AddOption{o}, record: []metric.RecordOption{o}, observe: []metric.ObserveOption{o}}
}

// NewMetrics creates the instruments on a meter of mp named [ScopeName]
// (nil mp: otel.GetMeterProvider()). Its error, if any, joins the errors of
// the instruments that could not be created; the Metrics is usable anyway.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	mt := mp.Meter(ScopeName)
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := mt.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		if c == nil {
			return noop.Int64Counter{}
		}
		return c
	}
	hist := func(name, desc string) metric.Float64Histogram {
		h, err := mt.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		if h == nil {
			return noop.Float64Histogram{}
		}
		return h
	}
	observable := func(name, desc string) metric.Int64ObservableCounter {
		c, err := mt.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		if c == nil {
			return noop.Int64ObservableCounter{}
		}
		return c
	}
	m := &Metrics{
		provider:     mp,
		calls:        observable("rampart.calls", "Logical calls, by outcome."),
		attempts:     observable("rampart.attempts", "Attempts sent to nodes, by outcome."),
		retries:      counter("rampart.retries", "Attempts after the first of a call."),
		budget:       counter("rampart.retry_budget.refusals", "Retries refused by the retry budget."),
		transitions:  counter("rampart.breaker.transitions", "Circuit breaker state changes."),
		bhRejected:   counter("rampart.bulkhead.rejections", "Calls refused by a full bulkhead."),
		rlRejected:   counter("rampart.ratelimit.rejections", "Calls refused by a rate limit."),
		failovers:    counter("rampart.failovers", "Attempts moved from one node to another."),
		callDuration: hist("rampart.call.duration", "Duration of logical calls, retries included."),
		bhWait:       hist("rampart.bulkhead.wait.duration", "Time spent waiting for a bulkhead slot."),
		rlWait:       hist("rampart.ratelimit.wait.duration", "Time spent waiting for a rate limit."),
	}
	var err error
	m.breakerState, err = mt.Int64Gauge("rampart.breaker.state",
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open."))
	errs = append(errs, err)
	if m.breakerState == nil {
		m.breakerState = noop.Int64Gauge{}
	}
	m.overflow = newMeasureOpts(attribute.NewSet(attrOverflowFlag.Bool(true)))
	empty := map[attrKey]*measureOpts{}
	m.sets.Store(&empty)
	for o := range m.callOpts {
		for p := range m.callOpts[o] {
			m.callOpts[o][p] = newMeasureOpts(policyKey(attrKey{mask: mOutcome, outcome: Outcome(o)}, Policy(p)).set())
		}
	}
	_, err = mt.RegisterCallback(m.observe, m.calls, m.attempts)
	errs = append(errs, err)
	return m, errors.Join(errs...)
}

// observe reports the totals of the observable counters, for every
// attribute set that has counted something.
func (m *Metrics) observe(_ context.Context, ob metric.Observer) error {
	report := func(o *measureOpts) {
		if n := o.calls.Load(); n > 0 {
			ob.ObserveInt64(m.calls, n, o.observe...)
		}
		if n := o.attempts.Load(); n > 0 {
			ob.ObserveInt64(m.attempts, n, o.observe...)
		}
	}
	for i := range m.callOpts {
		for _, o := range m.callOpts[i] {
			report(o)
		}
	}
	for _, o := range *m.sets.Load() {
		report(o)
	}
	report(m.overflow)
	return nil
}

// opts returns the cached options for k, building them on first use.
func (m *Metrics) opts(k attrKey) *measureOpts {
	if o, ok := (*m.sets.Load())[k]; ok {
		return o
	}
	return m.build(k)
}

func (m *Metrics) build(k attrKey) *measureOpts {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.sets.Load()
	if o, ok := cur[k]; ok {
		return o
	}
	if len(cur) >= attributeSetCap {
		return m.overflow
	}
	o := newMeasureOpts(k.set())
	next := make(map[attrKey]*measureOpts, len(cur)+1)
	for kk, vv := range cur {
		next[kk] = vv
	}
	next[k] = o
	m.sets.Store(&next)
	return o
}

// set builds the attribute set k describes.
func (k attrKey) set() attribute.Set {
	kv := make([]attribute.KeyValue, 0, 4)
	if k.mask&mNode != 0 {
		kv = append(kv, AttrNode.String(k.node))
	}
	if k.mask&mPartition != 0 {
		kv = append(kv, AttrPartition.Int(k.partition))
	}
	if k.mask&mPolicy != 0 {
		kv = append(kv, AttrPolicy.String(k.policy.String()))
	}
	if k.mask&mOutcome != 0 {
		kv = append(kv, AttrOutcome.String(k.outcome.String()))
	}
	if k.mask&mStates != 0 {
		kv = append(kv, AttrFromState.String(breakerStateName(int(k.from))),
			AttrToState.String(breakerStateName(int(k.to))))
	}
	if k.mask&mFailover != 0 {
		kv = append(kv, AttrFromNode.String(k.node), AttrToNode.String(k.node2))
	}
	return attribute.NewSet(kv...)
}

func nodeKey(node string, partition int) attrKey {
	k := attrKey{node: node, partition: partition}
	if node != "" {
		k.mask |= mNode
	}
	if partition >= 0 {
		k.mask |= mPartition
	} else {
		k.partition = 0
	}
	return k
}

func attemptAttrKey(node string, partition int, outcome Outcome) attrKey {
	k := nodeKey(node, partition)
	k.mask |= mOutcome
	k.outcome = outcome
	return k
}

func policyKey(k attrKey, p Policy) attrKey {
	if p != NoPolicy {
		k.mask |= mPolicy
		k.policy = p
	}
	return k
}

func ctxOr(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// Call records one logical call: its outcome, the policy that rejected it
// (NoPolicy if none) and its duration. [Call.End] records it for calls of a
// Tracer.
func (m *Metrics) Call(ctx context.Context, outcome Outcome, policy Policy, d time.Duration) {
	if m == nil {
		return
	}
	var o *measureOpts
	if int(outcome) < len(outcomeNames) && int(policy) < len(policyNames) {
		o = m.callOpts[outcome][policy]
	} else {
		o = m.opts(policyKey(attrKey{mask: mOutcome, outcome: outcome}, policy))
	}
	o.calls.Add(1)
	m.callDuration.Record(ctxOr(ctx), d.Seconds(), o.record...)
}

// Attempt records one attempt on node and partition with its outcome.
// [Attempt.End] records it for calls of a Tracer.
func (m *Metrics) Attempt(ctx context.Context, node string, partition int, outcome Outcome) {
	if m == nil {
		return
	}
	m.opts(attemptAttrKey(node, partition, outcome)).attempts.Add(1)
}

// Retry records one retry (an attempt after the first) on node and
// partition. [Attempt.End] records it for calls of a Tracer.
func (m *Metrics) Retry(ctx context.Context, node string, partition int) {
	if m == nil {
		return
	}
	m.retries.Add(ctxOr(ctx), 1, m.opts(nodeKey(node, partition)).add...)
}

// BudgetRefused records a retry the retry budget refused.
func (m *Metrics) BudgetRefused(ctx context.Context, node string, partition int) {
	if m == nil {
		return
	}
	m.budget.Add(ctxOr(ctx), 1, m.opts(nodeKey(node, partition)).add...)
}

// BreakerState records the current state of node's breaker
// ([BreakerClosed], [BreakerHalfOpen], [BreakerOpen]).
func (m *Metrics) BreakerState(ctx context.Context, node string, state int) {
	if m == nil {
		return
	}
	m.breakerState.Record(ctxOr(ctx), int64(state), m.opts(nodeKey(node, -1)).record...)
}

// BreakerTransition records a change of node's breaker from one state to
// another, and the new state as [Metrics.BreakerState] does.
func (m *Metrics) BreakerTransition(ctx context.Context, node string, from, to int) {
	if m == nil {
		return
	}
	k := nodeKey(node, -1)
	k.mask |= mStates
	k.from, k.to = clampState(from), clampState(to)
	ctx = ctxOr(ctx)
	m.transitions.Add(ctx, 1, m.opts(k).add...)
	m.BreakerState(ctx, node, to)
}

func clampState(s int) int8 {
	if s < 0 || s >= len(breakerStateNames) {
		return -1
	}
	return int8(s)
}

// BulkheadRejected records a call refused by node's full bulkhead.
func (m *Metrics) BulkheadRejected(ctx context.Context, node string) {
	if m == nil {
		return
	}
	m.bhRejected.Add(ctxOr(ctx), 1, m.opts(nodeKey(node, -1)).add...)
}

// BulkheadWait records the time a call waited for a slot of node's bulkhead.
func (m *Metrics) BulkheadWait(ctx context.Context, node string, d time.Duration) {
	if m == nil {
		return
	}
	m.bhWait.Record(ctxOr(ctx), d.Seconds(), m.opts(nodeKey(node, -1)).record...)
}

// RateLimited records a call refused by a rate limit (node "" for a limit
// not tied to a node).
func (m *Metrics) RateLimited(ctx context.Context, node string) {
	if m == nil {
		return
	}
	m.rlRejected.Add(ctxOr(ctx), 1, m.opts(nodeKey(node, -1)).add...)
}

// RateLimitWait records the time a call waited for a rate limit.
func (m *Metrics) RateLimitWait(ctx context.Context, node string, d time.Duration) {
	if m == nil {
		return
	}
	m.rlWait.Record(ctxOr(ctx), d.Seconds(), m.opts(nodeKey(node, -1)).record...)
}

// Failover records that an attempt for partition moved from node from to
// node to.
func (m *Metrics) Failover(ctx context.Context, partition int, from, to string) {
	if m == nil {
		return
	}
	k := nodeKey("", partition)
	k.mask |= mFailover
	k.node, k.node2 = from, to
	m.failovers.Add(ctxOr(ctx), 1, m.opts(k).add...)
}
