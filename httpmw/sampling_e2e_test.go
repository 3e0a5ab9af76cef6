package httpmw_test

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// e2eFailEvery makes call i a failing call when i%e2eFailEvery == 0: with
// 101, one call in 101 fails (200 of 20,200).
const e2eFailEvery = 101

// tpServer is a loopback HTTP server that checks the W3C traceparent of
// every request it gets. Requests with "X-Fail: 1" are answered 503 (every
// attempt, so the call exhausts its retries); the others 200.
type tpServer struct {
	srv      *httptest.Server
	requests atomic.Int64 // every attempt received
	valid    atomic.Int64 // attempts with exactly one valid traceparent

	mu sync.Mutex
	// failing: call id (X-Call) of a failing call → the traceparents of its
	// attempts, in arrival order.
	failing map[string][]string
	// sampledOK: trace IDs of successful requests whose traceparent had
	// the sampled flag set.
	sampledOK map[string]bool
}

func newTPServer(t *testing.T) *tpServer {
	s := &tpServer{failing: map[string][]string{}, sampledOK: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		vals := r.Header.Values("Traceparent")
		ok := len(vals) == 1 && clustertest.ValidTraceparent(vals[0])
		if ok {
			s.valid.Add(1)
		}
		if r.Header.Get("X-Fail") == "1" {
			s.mu.Lock()
			id := r.Header.Get("X-Call")
			s.failing[id] = append(s.failing[id], strings.Join(vals, ","))
			s.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if ok && strings.HasSuffix(vals[0], "-01") {
			s.mu.Lock()
			s.sampledOK[vals[0][3:35]] = true
			s.mu.Unlock()
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// e2eRun is the outcome of driving calls through a traced preset.
type e2eRun struct {
	srv      *tpServer
	spans    []sdktrace.ReadOnlySpan
	attempts int // retry.Policy.MaxAttempts
}

// runSamplingE2E sends calls logical GET calls, one in e2eFailEvery failing
// on every attempt, through the httpmw preset (tracing at 1%, retry,
// breaker, bulkhead) from 8 goroutines to a loopback server, and returns
// every span the synchronous recorder saw.
func runSamplingE2E(t *testing.T, calls int) e2eRun {
	srv := newTPServer(t)
	rec := tracetest.NewSpanRecorder() // a synchronous span processor
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	tracer := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(0.01),
		sampling.WithResendCountKey("http.request.resend_count"))

	const attempts = 3
	base := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}
	t.Cleanup(base.CloseIdleConnections)
	rt := httpmw.New(base,
		httpmw.WithTracer(tracer),
		httpmw.WithRetry(retry.NewPolicy(retry.Policy{
			MaxAttempts: attempts, BaseDelay: 200 * time.Microsecond, MaxDelay: time.Millisecond, Jitter: -1,
		})),
		// The failing calls must not open the breaker for the others.
		httpmw.WithBreakers(breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1 << 30}, 0)),
	)
	client := &http.Client{Transport: rt}

	const workers = 8
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []string
	)
	fail := func(format string) {
		errsMu.Lock()
		if len(errs) < 10 {
			errs = append(errs, format)
		}
		errsMu.Unlock()
	}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= calls {
					return
				}
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.srv.URL+"/item?id="+strconv.Itoa(i), nil)
				if err != nil {
					fail(err.Error())
					return
				}
				failing := i%e2eFailEvery == 0
				if failing {
					req.Header.Set("X-Fail", "1")
					req.Header.Set("X-Call", strconv.Itoa(i))
				}
				resp, err := client.Do(req)
				switch {
				case failing && err == nil && resp.StatusCode != http.StatusServiceUnavailable:
					fail("failing call " + strconv.Itoa(i) + ": status " + resp.Status)
				case !failing && err != nil:
					fail("call " + strconv.Itoa(i) + ": " + err.Error())
				case !failing && resp.StatusCode != http.StatusOK:
					fail("call " + strconv.Itoa(i) + ": status " + resp.Status)
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("calls went wrong: %v", errs)
	}
	return e2eRun{srv: srv, spans: rec.Ended(), attempts: attempts}
}

// checkSamplingE2E asserts the properties on a run of calls calls.
func checkSamplingE2E(t *testing.T, calls int, r e2eRun) {
	nFail := (calls + e2eFailEvery - 1) / e2eFailEvery
	nOK := calls - nFail

	// Server side: every attempt carried one valid traceparent.
	wantReq := int64(nOK + nFail*r.attempts)
	if got, valid := r.srv.requests.Load(), r.srv.valid.Load(); got != wantReq || valid != got {
		t.Errorf("server saw %d attempts (want %d), %d with a valid traceparent", got, wantReq, valid)
	}
	// Every failing call kept one trace ID across its attempts.
	failTrace := map[string]string{}    // trace ID → call id
	propagated := map[string][]string{} // trace ID → span IDs sent
	if len(r.srv.failing) != nFail {
		t.Errorf("server saw %d failing calls, want %d", len(r.srv.failing), nFail)
	}
	for id, tps := range r.srv.failing {
		if len(tps) != r.attempts {
			t.Errorf("failing call %s: %d attempts reached the server, want %d", id, len(tps), r.attempts)
			continue
		}
		tid := tps[0][3:35]
		for _, v := range tps {
			if v[3:35] != tid {
				t.Errorf("failing call %s changed trace ID across attempts: %q", id, tps)
			}
			propagated[tid] = append(propagated[tid], v[36:52])
		}
		failTrace[tid] = id
	}

	// Client side: split the spans into logical calls and attempts.
	logical := map[string]sdktrace.ReadOnlySpan{} // trace ID → logical span
	attemptsOf := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range r.spans {
		tid := s.SpanContext().TraceID().String()
		if _, ok := metrictest.SpanAttr(s, sampling.AttrAttempt); ok {
			attemptsOf[tid] = append(attemptsOf[tid], s)
			continue
		}
		if _, dup := logical[tid]; dup {
			t.Errorf("two logical spans in trace %s", tid)
		}
		logical[tid] = s
	}
	var okExported, failExported int
	for tid, s := range logical {
		if _, failed := failTrace[tid]; !failed {
			if s.Status().Code == codes.Error {
				t.Errorf("successful call %s exported with status Error: %v", tid, s.Status())
			}
			if !r.srv.sampledOK[tid] {
				t.Errorf("exported successful call %s was not propagated as sampled", tid)
			}
			if n := len(attemptsOf[tid]); n != 1 {
				t.Errorf("successful call %s: %d attempt spans, want 1", tid, n)
			}
			okExported++
			continue
		}
		failExported++
		if s.Status().Code != codes.Error {
			t.Errorf("failed call %s exported with status %v", tid, s.Status())
		}
		if v, _ := metrictest.SpanAttr(s, sampling.AttrAttempts); v.AsInt64() != int64(r.attempts) {
			t.Errorf("failed call %s: rampart.attempts = %v", tid, v.Emit())
		}
		checkFailedAttempts(t, r, tid, s, attemptsOf[tid], propagated[tid])
	}
	if failExported != nFail {
		t.Errorf("failed calls exported: %d, want all %d", failExported, nFail)
	}
	// Head sampling at 1%: about nOK/100 successes; the tolerance is 30%
	// or 4 standard deviations, whichever is wider (±60 for 20,000 calls).
	want := float64(nOK) / 100
	tol := max(0.3*want, 4*math.Sqrt(want))
	if d := float64(okExported) - want; d < -tol || d > tol {
		t.Errorf("successful calls exported: %d, want %.0f ± %.0f", okExported, want, tol)
	}
	if okExported != len(r.srv.sampledOK) {
		t.Errorf("%d successful calls exported, but %d were propagated with the sampled flag", okExported, len(r.srv.sampledOK))
	}
	t.Logf("%d calls: %d of %d successful calls exported, %d of %d failed calls exported; server: %d attempts, %d valid traceparents; %d spans",
		calls, okExported, nOK, failExported, nFail, r.srv.requests.Load(), r.srv.valid.Load(), len(r.spans))
}

// checkFailedAttempts checks the attempt spans of one failed call: one per
// attempt, numbered, with the node, the outcome, the resend count and the
// backoff, and the span ID the server saw in its traceparent.
func checkFailedAttempts(t *testing.T, r e2eRun, tid string, call sdktrace.ReadOnlySpan, atts []sdktrace.ReadOnlySpan, sent []string) {
	t.Helper()
	if len(atts) != r.attempts {
		t.Errorf("failed call %s: %d attempt spans, want %d", tid, len(atts), r.attempts)
		return
	}
	host := r.srv.srv.Listener.Addr().String()
	hostIP, port := host[:strings.LastIndexByte(host, ':')], host[strings.LastIndexByte(host, ':')+1:]
	seen := map[int64]bool{}
	for _, a := range atts {
		if a.Parent().SpanID() != call.SpanContext().SpanID() {
			t.Errorf("failed call %s: attempt span not a child of the call span", tid)
		}
		n, _ := metrictest.SpanAttr(a, sampling.AttrAttempt)
		seen[n.AsInt64()] = true
		if v, _ := metrictest.SpanAttr(a, sampling.AttrServerAddress); v.AsString() != hostIP {
			t.Errorf("failed call %s attempt %d: server.address %q, want %q", tid, n.AsInt64(), v.Emit(), hostIP)
		}
		if v, _ := metrictest.SpanAttr(a, sampling.AttrServerPort); strconv.FormatInt(v.AsInt64(), 10) != port {
			t.Errorf("failed call %s attempt %d: server.port %v, want %s", tid, n.AsInt64(), v.Emit(), port)
		}
		if v, _ := metrictest.SpanAttr(a, sampling.AttrOutcome); v.AsString() != sampling.Failure.String() {
			t.Errorf("failed call %s attempt %d: outcome %q", tid, n.AsInt64(), v.Emit())
		}
		if a.Status().Code != codes.Error {
			t.Errorf("failed call %s attempt %d: status %v", tid, n.AsInt64(), a.Status())
		}
		resend, hasResend := metrictest.SpanAttr(a, "http.request.resend_count")
		backoff, hasBackoff := metrictest.SpanAttr(a, sampling.AttrBackoffMS)
		if n.AsInt64() == 1 {
			if hasResend || hasBackoff {
				t.Errorf("failed call %s: first attempt has resend count or backoff", tid)
			}
		} else if resend.AsInt64() != n.AsInt64()-1 || !hasBackoff || backoff.AsFloat64() <= 0 {
			t.Errorf("failed call %s attempt %d: resend_count %v, backoff_ms %v", tid, n.AsInt64(), resend.Emit(), backoff.Emit())
		}
		// The span ID the server saw is the exported attempt span's own
		// (sampled call) or its rampart.propagated_span_id (promoted call).
		sid := metrictest.PropagatedSpanID(a)
		if !slices.Contains(sent, sid) {
			t.Errorf("failed call %s attempt %d: span ID %s not among those the server saw %v", tid, n.AsInt64(), sid, sent)
		}
	}
	for i := 1; i <= r.attempts; i++ {
		if !seen[int64(i)] {
			t.Errorf("failed call %s: no span for attempt %d", tid, i)
		}
	}
}

// TestSamplingE2E drives 20,200 calls (20,000 successes, 200 failures that
// exhaust their retries) through the traced preset to a loopback server
// and checks what was exported against what the server saw.
func TestSamplingE2E(t *testing.T) {
	const calls = 20_200
	checkSamplingE2E(t, calls, runSamplingE2E(t, calls))
}
