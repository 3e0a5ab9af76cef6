package sampling_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/rampart-go/rampart/sampling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a test clock: every reading advances it by one millisecond, so
// each event of a call has a distinct, known time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

type env struct {
	exp *tracetest.InMemoryExporter
	tp  *sdktrace.TracerProvider
	clk *clock
	tr  *sampling.Tracer
}

func newEnv(t testing.TB, ratio float64, opts ...sampling.Option) *env {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	clk := newClock()
	opts = append([]sampling.Option{
		sampling.WithTracerProvider(tp),
		sampling.WithPropagator(propagation.TraceContext{}),
		sampling.WithRatio(ratio),
		sampling.WithClock(clk.Now),
		sampling.WithResendCountKey("http.request.resend_count"),
	}, opts...)
	return &env{exp: exp, tp: tp, clk: clk, tr: sampling.NewTracer(opts...)}
}

// try is the plan of one attempt.
type try struct {
	node    string
	outcome sampling.Outcome
	err     error
	backoff time.Duration
}

// record is what a test saw of one call.
type record struct {
	traceID  trace.TraceID
	sampled  bool
	parents  []string // injected traceparent per attempt
	spanIDs  []trace.SpanID
	starts   []time.Time
	ends     []time.Time
	callTime [2]time.Time
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$`)

// run makes one call through the API following plan; reject, when set, is a
// policy rejection recorded before any attempt.
func (e *env) run(t testing.TB, ctx context.Context, name string, reject sampling.Policy, plan []try, endErr error) record {
	t.Helper()
	var rec record
	cctx, c := e.tr.Start(ctx, name, trace.SpanKindInternal, attribute.String("rpc.method", name))
	rec.traceID, rec.sampled = c.TraceID(), c.Sampled()
	if sampling.CallFromContext(cctx) != c {
		t.Fatal("CallFromContext(Start ctx) is not the call")
	}
	if reject != sampling.NoPolicy {
		c.Rejected(reject, errors.New("refused"))
	}
	for i, p := range plan {
		actx, a := c.StartAttempt(cctx, p.node, i%3)
		if got, ok := sampling.AttemptFromContext(actx); !ok || got != a {
			t.Fatal("AttemptFromContext(attempt ctx) is not the attempt")
		}
		if sc := trace.SpanContextFromContext(actx); sc.TraceID() != rec.traceID || sc.SpanID() != a.SpanContext().SpanID() {
			t.Fatalf("attempt ctx span context %v, attempt %v", sc, a.SpanContext())
		}
		carrier := propagation.MapCarrier{}
		a.Inject(actx, carrier)
		tp := carrier.Get("traceparent")
		if !traceparentRE.MatchString(tp) {
			t.Fatalf("attempt %d: traceparent %q is not W3C", i+1, tp)
		}
		if got := string(a.AppendTraceparent(nil)); got != tp {
			t.Fatalf("AppendTraceparent %q, Inject %q", got, tp)
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		if sc.TraceID() != rec.traceID || sc.SpanID() != a.SpanContext().SpanID() || sc.IsSampled() != rec.sampled {
			t.Fatalf("attempt %d: extracted %v; want trace %v span %v sampled %v",
				i+1, sc, rec.traceID, a.SpanContext().SpanID(), rec.sampled)
		}
		a.SetAttributes(attribute.Int("http.response.status_code", 200+i))
		rec.parents = append(rec.parents, tp)
		rec.spanIDs = append(rec.spanIDs, sc.SpanID())
		a.End(p.outcome, p.err, p.backoff)
	}
	c.End(endErr)
	return rec
}

func attrMap(kv []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kv))
	for _, a := range kv {
		m[a.Key] = a.Value
	}
	return m
}

// TestSamplingStatistics drives many successful and failing calls and checks
// that every failing call is exported and successes are exported at ≈ ratio.
func TestSamplingStatistics(t *testing.T) {
	e := newEnv(t, 0.01)
	const successes = 20000
	boom := errors.New("boom")
	for range successes {
		e.run(t, context.Background(), "ok", sampling.NoPolicy, []try{{node: "127.0.1.5:8080", outcome: sampling.Success}}, nil)
	}
	type failing struct {
		reject sampling.Policy
		plan   []try
		err    error
	}
	kinds := []failing{
		// A failed attempt, then a successful retry: the call succeeds but is errored.
		{plan: []try{{"127.0.1.5:8080", sampling.Failure, boom, 0}, {"127.0.1.6:8080", sampling.Success, nil, 20 * time.Millisecond}}},
		// A throttled attempt (neutral for the breaker, a 429), then a
		// successful retry: the retry says the call saw an error.
		{plan: []try{{"127.0.1.5:8080", sampling.Neutral, nil, 0}, {"127.0.1.5:8080", sampling.Success, nil, time.Second}}},
		// Retries exhausted.
		{plan: []try{{"127.0.1.5:8080", sampling.Failure, boom, 0}, {"127.0.1.6:8080", sampling.Failure, boom, 10 * time.Millisecond}, {"127.0.1.7:8080", sampling.Failure, boom, 20 * time.Millisecond}}, err: boom},
		// Breaker open on an attempt.
		{plan: []try{{"127.0.1.5:8080", sampling.Rejected, errors.New("breaker open"), 0}}, err: errors.New("breaker open")},
		// Rate limited before any attempt.
		{reject: sampling.PolicyRateLimit, err: errors.New("rate limited")},
	}
	failed := map[trace.TraceID]record{}
	const perKind = 250
	for i := range perKind * len(kinds) {
		k := kinds[i%len(kinds)]
		r := e.run(t, context.Background(), fmt.Sprintf("fail-%d", i%len(kinds)), k.reject, k.plan, k.err)
		failed[r.traceID] = r
	}
	if len(failed) != perKind*len(kinds) {
		t.Fatalf("trace IDs not unique: %d distinct of %d", len(failed), perKind*len(kinds))
	}

	spans := e.exp.GetSpans()
	byTrace := map[trace.TraceID][]tracetest.SpanStub{}
	okCalls := 0
	for _, s := range spans {
		byTrace[s.SpanContext.TraceID()] = append(byTrace[s.SpanContext.TraceID()], s)
		if s.Name == "ok" && s.SpanKind == trace.SpanKindInternal {
			okCalls++
		}
	}
	// 20,000 × 1% = 200; the standard deviation is ≈ 14, so ±60 is > 4σ.
	if okCalls < 140 || okCalls > 260 {
		t.Errorf("exported %d successful calls of %d at 1%%; want 200 ± 60", okCalls, successes)
	}
	for id, r := range failed {
		checkFailedTrace(t, byTrace[id], r)
	}
}

// checkFailedTrace checks the exported spans of one failed call.
func checkFailedTrace(t *testing.T, spans []tracetest.SpanStub, r record) {
	t.Helper()
	var logical *tracetest.SpanStub
	var attempts []tracetest.SpanStub
	for i := range spans {
		if spans[i].SpanKind == trace.SpanKindInternal {
			if logical != nil {
				t.Fatalf("trace %v: two logical spans", r.traceID)
			}
			logical = &spans[i]
		} else {
			attempts = append(attempts, spans[i])
		}
	}
	if logical == nil {
		t.Fatalf("trace %v (sampled %v): failed call not exported", r.traceID, r.sampled)
	}
	if logical.Status.Code != codes.Error {
		t.Errorf("trace %v: logical status %v, want Error", r.traceID, logical.Status)
	}
	la := attrMap(logical.Attributes)
	if la["rpc.method"].AsString() != logical.Name {
		t.Errorf("logical span lost the Start attributes: %v", logical.Attributes)
	}
	if len(attempts) != len(r.parents) {
		t.Fatalf("trace %v: %d attempt spans, want %d", r.traceID, len(attempts), len(r.parents))
	}
	if len(attempts) == 0 && len(logical.Events) == 0 {
		t.Errorf("rejected call has no rampart.rejected event")
	}
	if !logical.StartTime.Before(logical.EndTime) {
		t.Errorf("logical span times %v..%v", logical.StartTime, logical.EndTime)
	}
	for _, a := range attempts {
		if a.Parent.SpanID() != logical.SpanContext.SpanID() {
			t.Errorf("attempt span not a child of the logical span")
		}
		am := attrMap(a.Attributes)
		n := int(am[sampling.AttrAttempt].AsInt64())
		if n < 1 || n > len(r.parents) {
			t.Fatalf("attempt number %d", n)
		}
		if a.StartTime.Before(logical.StartTime) || a.EndTime.After(logical.EndTime) || !a.StartTime.Before(a.EndTime) {
			t.Errorf("attempt %d times %v..%v outside call %v..%v", n, a.StartTime, a.EndTime, logical.StartTime, logical.EndTime)
		}
		if am[sampling.AttrServerAddress].AsString() == "" || am[sampling.AttrServerPort].AsInt64() != 8080 {
			t.Errorf("attempt %d: server attributes %v", n, a.Attributes)
		}
		if _, ok := am["http.response.status_code"]; !ok {
			t.Errorf("attempt %d: lost attempt attribute", n)
		}
		rc, has := am["http.request.resend_count"]
		if (n > 1) != has || (has && rc.AsInt64() != int64(n-1)) {
			t.Errorf("attempt %d: resend_count %v (present %v)", n, rc, has)
		}
		if !r.sampled {
			if got := am[sampling.AttrPropagatedSpanID].AsString(); got != r.spanIDs[n-1].String() {
				t.Errorf("attempt %d: propagated span id %q, injected %v", n, got, r.spanIDs[n-1])
			}
		} else if a.SpanContext.SpanID() != r.spanIDs[n-1] {
			t.Errorf("sampled attempt %d: exported span id %v, injected %v", n, a.SpanContext.SpanID(), r.spanIDs[n-1])
		}
		switch am[sampling.AttrOutcome].AsString() {
		case "failure", "rejected":
			if a.Status.Code != codes.Error || len(a.Events) == 0 {
				t.Errorf("failed attempt %d: status %v events %d", n, a.Status, len(a.Events))
			}
		case "success":
			if a.Status.Code == codes.Error {
				t.Errorf("successful attempt %d has status Error", n)
			}
		}
	}
}

// TestAttemptTimes checks that a promoted (unsampled, errored) call's spans
// carry the exact times of the attempt log and every attribute.
func TestAttemptTimes(t *testing.T) {
	e := newEnv(t, 0)
	clk := e.clk
	boom := errors.New("boom")

	t0 := clk.t.Add(time.Millisecond) // the Start reading
	ctx, c := e.tr.Start(context.Background(), "GET", trace.SpanKindClient)
	if c.Sampled() {
		t.Fatal("ratio 0 sampled a call")
	}
	_, a1 := c.StartAttempt(ctx, "127.0.2.5:9000", 1)   // t0+1ms
	a1.End(sampling.Failure, boom, 0)                   // t0+2ms
	_, a2 := c.StartAttempt(ctx, "[::1]:9001", 1)       // t0+3ms
	a2.End(sampling.Success, nil, 250*time.Millisecond) // t0+4ms
	tid := c.TraceID()
	c.End(nil) // t0+5ms

	spans := e.exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("exported %d spans, want 3", len(spans))
	}
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	want := map[string][2]time.Time{"0": {ms(0), ms(5)}, "1": {ms(1), ms(2)}, "2": {ms(3), ms(4)}}
	for _, s := range spans {
		am := attrMap(s.Attributes)
		key := fmt.Sprint(am[sampling.AttrAttempt].AsInt64())
		w := want[key]
		if !s.StartTime.Equal(w[0]) || !s.EndTime.Equal(w[1]) {
			t.Errorf("span attempt=%s: %v..%v, want %v..%v", key, s.StartTime, s.EndTime, w[0], w[1])
		}
		switch key {
		case "0":
			if !am[sampling.AttrPromoted].AsBool() || !am[sampling.AttrSyntheticParent].AsBool() ||
				am[sampling.AttrOutcome].AsString() != "success" || am[sampling.AttrAttempts].AsInt64() != 2 {
				t.Errorf("logical attributes %v", s.Attributes)
			}
			if s.Status.Code != codes.Error || s.Status.Description != "attempt 1: boom" {
				t.Errorf("logical status %+v", s.Status)
			}
			if !s.Parent.IsRemote() || s.Parent.TraceID() != tid {
				t.Errorf("logical parent %v", s.Parent)
			}
		case "1":
			if am[sampling.AttrServerAddress].AsString() != "127.0.2.5" || am[sampling.AttrServerPort].AsInt64() != 9000 ||
				am[sampling.AttrPartition].AsInt64() != 1 || am[sampling.AttrOutcome].AsString() != "failure" {
				t.Errorf("attempt 1 attributes %v", s.Attributes)
			}
			if s.Status.Code != codes.Error || s.Status.Description != "boom" {
				t.Errorf("attempt 1 status %+v", s.Status)
			}
			if len(s.Events) != 1 || s.Events[0].Name != "exception" || !s.Events[0].Time.Equal(ms(2)) {
				t.Errorf("attempt 1 events %+v", s.Events)
			}
		case "2":
			if am[sampling.AttrServerAddress].AsString() != "::1" || am[sampling.AttrBackoffMS].AsFloat64() != 250 ||
				am["http.request.resend_count"].AsInt64() != 1 {
				t.Errorf("attempt 2 attributes %v", s.Attributes)
			}
		default:
			t.Errorf("unexpected span %q attempt=%s", s.Name, key)
		}
		if s.SpanContext.TraceID() != tid {
			t.Errorf("span in trace %v, call trace %v", s.SpanContext.TraceID(), tid)
		}
	}
}

// TestParentHandling checks the head decision against parents in ctx.
func TestParentHandling(t *testing.T) {
	e := newEnv(t, 0)
	tid := trace.TraceID{0xaa, 1}
	parent := func(flags trace.TraceFlags) context.Context {
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: trace.SpanID{0xbb, 2}, TraceFlags: flags, Remote: true,
		}))
	}

	// A sampled parent is honoured even at ratio 0; spans are live and the
	// injected span ID is the exported one.
	r := e.run(t, parent(trace.FlagsSampled), "sampled-parent", sampling.NoPolicy, []try{{node: "127.0.0.1:1"}}, nil)
	if !r.sampled || r.traceID != tid || r.parents[0][len(r.parents[0])-2:] != "01" {
		t.Fatalf("sampled parent: %+v", r)
	}
	spans := e.exp.GetSpans()
	if len(spans) != 2 || spans[1].Parent.SpanID() != (trace.SpanID{0xbb, 2}) || spans[0].SpanContext.SpanID() != r.spanIDs[0] {
		t.Fatalf("sampled parent spans: %+v", spans)
	}
	e.exp.Reset()

	// An unsampled parent at ratio 0: not sampled, trace ID kept, flag 00.
	r = e.run(t, parent(0), "unsampled-parent", sampling.NoPolicy, []try{{node: "127.0.0.1:1"}}, nil)
	if r.sampled || r.traceID != tid || r.parents[0][len(r.parents[0])-2:] != "00" {
		t.Fatalf("unsampled parent: %+v", r)
	}
	if n := len(e.exp.GetSpans()); n != 0 {
		t.Fatalf("unsampled success exported %d spans", n)
	}

	// The same call failing is exported under the real parent.
	e.run(t, parent(0), "unsampled-parent", sampling.NoPolicy, []try{{node: "127.0.0.1:1", outcome: sampling.Failure}}, errors.New("x"))
	spans = e.exp.GetSpans()
	if len(spans) != 2 || spans[1].Parent.SpanID() != (trace.SpanID{0xbb, 2}) || spans[1].SpanContext.TraceID() != tid {
		t.Fatalf("promoted spans under parent: %+v", spans)
	}
	if _, synthetic := attrMap(spans[1].Attributes)[sampling.AttrSyntheticParent]; synthetic {
		t.Error("a call with a real parent is marked synthetic")
	}
}

// TestRatioOne checks that ratio 1 samples every call with live spans.
func TestRatioOne(t *testing.T) {
	e := newEnv(t, 1)
	for range 20 {
		r := e.run(t, context.Background(), "ok", sampling.NoPolicy, []try{{node: "127.0.0.1:1"}}, nil)
		if !r.sampled {
			t.Fatal("ratio 1 did not sample")
		}
	}
	if n := len(e.exp.GetSpans()); n != 40 {
		t.Fatalf("exported %d spans, want 40", n)
	}
}

// TestDroppingProvider checks that a call the provider refuses to record
// falls back to the attempt log, and still propagates.
func TestDroppingProvider(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(1))
	ctx, c := tr.Start(context.Background(), "x", trace.SpanKindClient)
	if c.Sampled() {
		t.Fatal("Sampled with a provider that drops everything")
	}
	_, a := c.StartAttempt(ctx, "127.0.0.1", -1)
	carrier := propagation.MapCarrier{}
	a.Inject(nil, carrier)
	if !traceparentRE.MatchString(carrier.Get("traceparent")) {
		t.Fatalf("traceparent %q", carrier.Get("traceparent"))
	}
	a.End(sampling.Success, nil, 0)
	c.End(nil)
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans exported", n)
	}
}

// TestSampledByRatioMatchesSDK compares SampledByRatio with the SDK sampler.
func TestSampledByRatioMatchesSDK(t *testing.T) {
	for _, ratio := range []float64{0, 0.001, 0.01, 0.5, 0.999, 1} {
		s := sdktrace.TraceIDRatioBased(ratio)
		for range 5000 {
			var id trace.TraceID
			for i := range id {
				id[i] = byte(rand.Uint32())
			}
			want := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: id}).Decision == sdktrace.RecordAndSample
			if got := sampling.SampledByRatio(id, ratio); got != want {
				t.Fatalf("ratio %v id %v: got %v, sdk %v", ratio, id, got, want)
			}
		}
	}
}

// TestNilAndStale checks that a nil Tracer and Call do nothing, and that an
// Attempt handle used after its call ended does nothing.
func TestNilAndStale(t *testing.T) {
	var tr *sampling.Tracer
	ctx, c := tr.Start(context.Background(), "x", trace.SpanKindClient)
	actx, a := c.StartAttempt(ctx, "n", 0)
	a.Inject(actx, propagation.MapCarrier{})
	a.End(sampling.Failure, errors.New("x"), 0)
	c.Rejected(sampling.PolicyBreaker, nil)
	c.End(errors.New("x"))
	if c.Sampled() || c.Errored() || a.Number() != 0 || sampling.CallFromContext(ctx) != nil {
		t.Fatal("nil call is not inert")
	}

	e := newEnv(t, 0)
	ctx, c = e.tr.Start(context.Background(), "x", trace.SpanKindClient)
	_, a = c.StartAttempt(ctx, "127.0.0.1:1", 0)
	a.End(sampling.Success, nil, 0)
	c.End(nil)
	carrier := propagation.MapCarrier{}
	a.Inject(nil, carrier)
	a.End(sampling.Failure, errors.New("late"), 0)
	if len(carrier) != 0 || a.Number() != 0 || a.SpanContext().IsValid() {
		t.Fatal("stale attempt handle still works")
	}
	if n := len(e.exp.GetSpans()); n != 0 {
		t.Fatalf("stale End exported %d spans", n)
	}
}

// TestManyAttempts goes past the inline attempt log.
func TestManyAttempts(t *testing.T) {
	e := newEnv(t, 0)
	var plan []try
	for i := range 12 {
		plan = append(plan, try{node: fmt.Sprintf("127.0.0.%d:8080", i+1), outcome: sampling.Failure, err: errors.New("x")})
	}
	r := e.run(t, context.Background(), "many", sampling.NoPolicy, plan, errors.New("exhausted"))
	spans := e.exp.GetSpans()
	if len(spans) != 13 {
		t.Fatalf("%d spans, want 13", len(spans))
	}
	checkFailedTrace(t, spans, r)
}

// TestEndClosesOpenAttempts checks that End ends attempts left open.
func TestEndClosesOpenAttempts(t *testing.T) {
	e := newEnv(t, 0)
	ctx, c := e.tr.Start(context.Background(), "open", trace.SpanKindClient)
	c.StartAttempt(ctx, "127.0.0.1:1", 0)
	c.End(context.DeadlineExceeded)
	spans := e.exp.GetSpans()
	if len(spans) != 2 || spans[0].Status.Code != codes.Error {
		t.Fatalf("spans %+v", spans)
	}
}

// TestConcurrentCalls runs calls from several goroutines (for -race).
func TestConcurrentCalls(t *testing.T) {
	e := newEnv(t, 0.1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				o, err := sampling.Success, error(nil)
				if i%50 == g {
					o, err = sampling.Failure, errors.New("x")
				}
				e.run(t, context.Background(), "c", sampling.NoPolicy, []try{{node: "127.0.0.1:1", outcome: o, err: err}}, err)
			}
		}()
	}
	wg.Wait()
	failed := 0
	for _, s := range e.exp.GetSpans() {
		if s.SpanKind == trace.SpanKindInternal && s.Status.Code == codes.Error {
			failed++
		}
	}
	if failed != 4*10 {
		t.Fatalf("%d failed calls exported, want 40", failed)
	}
}

// TestUnsampledAllocs checks the unsampled success path allocates nothing
// but the traceparent header value.
func TestUnsampledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	e := newEnv(t, 0)
	ctx := context.Background()
	carrier := propagation.MapCarrier{"traceparent": ""}
	buf := make([]byte, 0, 64)
	noInject := testing.AllocsPerRun(1000, func() {
		cctx, c := e.tr.Start(ctx, "GET", trace.SpanKindClient)
		actx, a := c.StartAttempt(cctx, "127.0.0.1:80", 0)
		buf = a.AppendTraceparent(buf[:0])
		_ = actx
		a.End(sampling.Success, nil, 0)
		c.End(nil)
	})
	withInject := testing.AllocsPerRun(1000, func() {
		cctx, c := e.tr.Start(ctx, "GET", trace.SpanKindClient)
		actx, a := c.StartAttempt(cctx, "127.0.0.1:80", 0)
		a.Inject(actx, carrier)
		a.End(sampling.Success, nil, 0)
		c.End(nil)
	})
	if noInject != 0 || withInject > 1 {
		t.Fatalf("allocs/op: %v without Inject (want 0), %v with Inject (want ≤ 1)", noInject, withInject)
	}
}

// TestWithoutPoolingKeepsContexts: without pooling, the contexts of a call
// keep working after End, with the span context they had, whether the call
// was sampled or not; its Attempt handles are void.
func TestWithoutPoolingKeepsContexts(t *testing.T) {
	for _, ratio := range []float64{0, 1} {
		e := newEnv(t, ratio, sampling.WithoutPooling())
		parent, cancel := context.WithCancel(context.Background())
		ctx, c := e.tr.Start(parent, "call", trace.SpanKindClient)
		actx, a := c.StartAttempt(ctx, "10.0.0.1:80", 0)
		callSC, attSC := trace.SpanContextFromContext(ctx), trace.SpanContextFromContext(actx)
		a.End(sampling.Success, nil, 0)
		c.End(nil)

		if got := trace.SpanContextFromContext(ctx); !got.Equal(callSC) {
			t.Errorf("ratio %v: call context's span %v after End, was %v", ratio, got, callSC)
		}
		if got := trace.SpanContextFromContext(actx); !got.Equal(attSC) {
			t.Errorf("ratio %v: attempt context's span %v after End, was %v", ratio, got, attSC)
		}
		cancel()
		<-actx.Done() // the contexts still follow their parent
		if ctx.Err() != context.Canceled || actx.Err() != context.Canceled {
			t.Errorf("ratio %v: Err() = %v, %v after the parent's cancel", ratio, ctx.Err(), actx.Err())
		}
		if got, ok := sampling.AttemptFromContext(actx); !ok || got.Number() != 0 {
			t.Errorf("ratio %v: AttemptFromContext after End = %v, attempt %d; want a void attempt", ratio, ok, got.Number())
		}
	}
}

// With a provider that records nothing (a noop provider, the global
// default), a call whose parent is sampled passes the parent's decision on
// downstream, as the OpenTelemetry API does without an SDK (it sent
// sampled=0, and downstream services dropped the upstream's trace).
func TestSampledParentNoopProvider(t *testing.T) {
	tr := sampling.NewTracer(sampling.WithTracerProvider(tracenoop.NewTracerProvider()),
		sampling.WithPropagator(propagation.TraceContext{}), sampling.WithRatio(0))
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	carrier := injectOnce(tr, trace.ContextWithRemoteSpanContext(context.Background(), parent))
	tp := carrier.Get("traceparent")
	t.Logf("parent sampled, traceparent sent: %s", tp)
	if tp[len(tp)-2:] != "01" {
		t.Errorf("sampled parent's flag not propagated: %s", tp)
	}
}

// injectOnce makes one successful call of one attempt under ctx and
// returns what the attempt injected.
func injectOnce(tr *sampling.Tracer, ctx context.Context) propagation.MapCarrier {
	cctx, c := tr.Start(ctx, "GET", trace.SpanKindClient)
	actx, a := c.StartAttempt(cctx, "127.0.0.1:80", -1)
	carrier := propagation.MapCarrier{}
	a.Inject(actx, carrier)
	a.End(sampling.Success, nil, 0)
	c.End(nil)
	return carrier
}

// A Tracer made without WithPropagator follows otel's global propagator as
// it is when each attempt injects, not as it was when the Tracer was made:
// programs often make their tracers before they set up telemetry.
func TestGlobalPropagatorSetAfterNewTracer(t *testing.T) {
	tr := sampling.NewTracer(sampling.WithRatio(0)) // the global propagator injects nothing yet
	if _, ok := tr.Propagator().(propagation.TraceContext); !ok {
		t.Fatalf("propagator before the global one is set: %T, want propagation.TraceContext", tr.Propagator())
	}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) }) // injects nothing again

	m, _ := baggage.NewMember("tenant", "acme")
	b, _ := baggage.New(m)
	carrier := injectOnce(tr, baggage.ContextWithBaggage(context.Background(), b))
	if carrier.Get("traceparent") == "" || carrier.Get("baggage") != "tenant=acme" {
		t.Fatalf("injected %v; want a traceparent and baggage tenant=acme", carrier)
	}
}

// wrapProp is a comparable propagator type that holds an uncomparable one.
type wrapProp struct{ propagation.TextMapPropagator }

// A Tracer that follows the global propagator costs what the same
// propagator given with WithPropagator costs, also for the usual composite
// (a slice, which == cannot compare), and a comparable wrapper around a
// composite does not make it panic.
func TestGlobalPropagatorCached(t *testing.T) {
	composite := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })
	allocs := func(tr *sampling.Tracer) float64 {
		cctx, c := tr.Start(context.Background(), "GET", trace.SpanKindClient)
		_, a := c.StartAttempt(cctx, "127.0.0.1:1", -1)
		carrier := propagation.MapCarrier{}
		n := testing.AllocsPerRun(100, func() {
			_ = tr.Propagator() // what the transports do per call
			a.Inject(cctx, carrier)
		})
		a.End(sampling.Success, nil, 0)
		c.End(nil)
		return n
	}
	for _, global := range []propagation.TextMapPropagator{composite, wrapProp{composite}} {
		otel.SetTextMapPropagator(global)
		explicit := allocs(sampling.NewTracer(sampling.WithRatio(0), sampling.WithPropagator(global)))
		followed := allocs(sampling.NewTracer(sampling.WithRatio(0)))
		if followed > explicit {
			t.Errorf("%T: allocations per attempt %v following the global propagator, %v given explicitly", global, followed, explicit)
		}
	}
}
