package httpmw_test

// The floor of the preset's success path: the work that any RoundTripper
// with the preset's features must do per call on the foundation modules,
// with none of the logic around it (no routing, classification, retry
// loop or context lookups). It puts a number on what issue 4's in-process
// target leaves room for: run it in the same process as the failsafe-go
// peer and compare,
//
//	go test -run '^$' -bench 'Floor|Stub$' -benchmem -count=8 ./httpmw/ | benchstat -col /sub -

import (
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
)

// floorReq is the request a layer sends instead of the caller's: the
// RoundTripper contract forbids changing the caller's, and failover
// rewrites its URL. It also holds the traceparent header's value.
type floorReq struct {
	req http.Request
	url url.URL
	tp  [1]string
	buf [55]byte // backs tp[0]
}

// floorClone copies r to go to node, as failover does.
func floorClone(r *http.Request, node string) *floorReq {
	f := new(floorReq)
	f.req, f.url = *r, *r.URL
	f.req.URL = &f.url
	f.req.Host = f.url.Host // the logical name stays the Host
	f.url.Host = node
	return f
}

// floorTraceparent gives f's request a header map of its own with a fresh
// traceparent: the caller's map may not be changed, nor can the copy be
// pooled (net/http keeps reading a sent request after RoundTrip returns).
func floorTraceparent(f *floorReq) {
	var id [24]byte
	for i := range 3 {
		v := rand.Uint64()
		for j := range 8 {
			id[i*8+j] = byte(v >> (8 * j))
		}
	}
	f.buf = [55]byte{0: '0', 1: '0', 2: '-', 35: '-', 52: '-', 53: '0', 54: '0'}
	hex.Encode(f.buf[3:35], id[:16])
	hex.Encode(f.buf[36:52], id[16:])
	f.tp[0] = unsafe.String(&f.buf[0], len(f.buf))
	h := maps.Clone(f.req.Header)
	h["Traceparent"] = f.tp[:]
	f.req.Header = h
}

// floorRT does the floor's steps around next, in a chain's order.
type floorRT struct {
	next     http.RoundTripper
	node     string
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	lim      *rate.Limiter
	inFlight atomic.Int64
	spent    atomic.Int64
}

func newFloorRT(next http.RoundTripper, node string) *floorRT {
	return &floorRT{next: next, node: node,
		cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{}), lim: rate.NewLimiter(1e9, 1<<20)}
}

func (t *floorRT) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	if !t.lim.Allow() {
		return nil, errors.New("limited")
	}
	f := floorClone(r, t.node)
	floorTraceparent(f)
	done, err := t.cb.Allow()
	if err != nil {
		return nil, err
	}
	t.inFlight.Add(1)
	resp, err := t.next.RoundTrip(&f.req)
	t.inFlight.Add(-1)
	done(err)
	t.spent.Add(int64(time.Since(start)))
	return resp, err
}

// floorSend calls rt as a chain calls the transport below it: through the
// interface, so that the stub's response escapes as it does in BenchmarkStub.
//
//go:noinline
func floorSend(rt http.RoundTripper, r *http.Request) (*http.Response, error) {
	return rt.RoundTrip(r)
}

// BenchmarkFloor measures, per call, each unavoidable step alone and all
// of them together ("all", floorRT, called as BenchmarkStub calls the
// preset), in front of the same canned stub as BenchmarkStub:
//   - clone: the request and its URL, one allocation;
//   - traceparent: a W3C traceparent on every attempt (issue 6) in a header
//     map of the request's own, with fresh random IDs;
//   - breaker: gobreaker's two-step Allow and done, as rampart's breakers
//     use it: they also serve gRPC streams and Breaker.Allow callers, whose
//     outcome comes after the admitting call returns (the done closure is
//     one allocation; each step reads the clock). breaker-execute measures
//     the one-step Execute beside it: no allocation, the same clock reads;
//   - ratelimit: x/time/rate's Allow (one clock read);
//   - clock: the call's start and end, for the call-duration histogram;
//   - bulkhead: one slot taken and given back.
func BenchmarkFloor(b *testing.B) {
	next := cannedRT{code: 200}
	req, _ := http.NewRequest("GET", "http://orders/item?id=1", nil)
	req.Header.Set("X-Partition-Key", "customer-42")
	fl := newFloorRT(next, "127.0.0.1:8080")
	var spent time.Duration
	breakerStep := func() {
		done, err := fl.cb.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
	rateStep := func() {
		if !fl.lim.Allow() {
			b.Fatal("limited")
		}
	}
	run := func(b *testing.B, call func() *http.Request) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := floorSend(next, call())
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, func() *http.Request { return req }) })
	b.Run("clone", func(b *testing.B) { run(b, func() *http.Request { return &floorClone(req, fl.node).req }) })
	b.Run("traceparent", func(b *testing.B) {
		f := floorClone(req, fl.node) // one clone for the whole run
		run(b, func() *http.Request {
			f.req.Header = req.Header
			floorTraceparent(f)
			return &f.req
		})
	})
	b.Run("breaker", func(b *testing.B) { run(b, func() *http.Request { breakerStep(); return req }) })
	b.Run("breaker-execute", func(b *testing.B) {
		// gobreaker's one-step Execute, for comparison: no allocation, but
		// the outcome must be known before it returns, which a gRPC stream's
		// is not, and a gobreaker breaker is one-step or two-step for good.
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{})
		run(b, func() *http.Request {
			_, _ = cb.Execute(func() (struct{}, error) { return struct{}{}, nil })
			return req
		})
	})
	b.Run("ratelimit", func(b *testing.B) { run(b, func() *http.Request { rateStep(); return req }) })
	b.Run("clock", func(b *testing.B) {
		run(b, func() *http.Request { start := time.Now(); spent += time.Since(start); return req })
	})
	b.Run("bulkhead", func(b *testing.B) {
		run(b, func() *http.Request { fl.inFlight.Add(1); fl.inFlight.Add(-1); return req })
	})
	b.Run("all", func(b *testing.B) { benchRT(b, fl, "http://orders/item?id=1", false) })
}

// BenchmarkFloorSpans is the floor of the failure path's tracing: the spans
// issue 6 exports for a call that failed after 3 attempts (the call's and
// one per attempt, each with the attributes it asks for), made with the
// SDK and the provider configuration of BenchmarkStubFailure, and nothing
// else: no IDs of our own, no attempt log, no classification.
func BenchmarkFloorSpans(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tp.Tracer("floor")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cctx, call := tr.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient))
		for i := range 3 {
			_, att := tr.Start(cctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
				attribute.Int("http.request.resend_count", i),
				attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", 8080),
				attribute.Int("rampart.partition", 0), attribute.String("rampart.outcome", "failure"),
				attribute.Int("http.response.status_code", 503), attribute.Int64("rampart.backoff_ms", 0)))
			att.SetStatus(codes.Error, "503")
			att.End()
		}
		call.SetAttributes(attribute.String("rampart.outcome", "failure"), attribute.Int("rampart.attempts", 3))
		call.SetStatus(codes.Error, "exhausted")
		call.End()
	}
}
