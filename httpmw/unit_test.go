package httpmw_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
	"golang.org/x/time/rate"
)

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) httpmw.Middleware {
		return func(next http.RoundTripper) http.RoundTripper {
			return httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				order = append(order, name)
				return next.RoundTrip(r)
			})
		}
	}
	s := &script{}
	rt := httpmw.Chain(s, mw("a"), nil, mw("b"), mw("c"))
	req, _ := http.NewRequest("GET", "http://x/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := strings.Join(order, ""); got != "abc" {
		t.Fatalf("order = %q, want abc", got)
	}
	if httpmw.Chain(nil) != http.DefaultTransport {
		t.Fatal("Chain(nil) is not http.DefaultTransport")
	}
}

func TestClassificationAndRetry(t *testing.T) {
	cases := []struct {
		name     string
		codes    []int
		attempts int
		wantErr  bool
		want     int // final status when no error
	}{
		{"ok", []int{200}, 1, false, 200},
		{"404 not retried", []int{404}, 1, false, 404},
		{"400 not retried", []int{400}, 1, false, 400},
		{"501 not retried", []int{501}, 1, false, 501},
		{"500 then ok", []int{500, 200}, 2, false, 200},
		{"502 then ok", []int{502, 200}, 2, false, 200},
		{"503 then ok", []int{503, 200}, 2, false, 200},
		{"504 then ok", []int{504, 200}, 2, false, 200},
		{"429 then ok", []int{429, 200}, 2, false, 200},
		{"conn error then ok", []int{0, 200}, 2, false, 200},
		{"503 exhausted", []int{503}, 3, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{codes: tc.codes}
			rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)))
			req, _ := http.NewRequest("GET", "http://svc/p?secret=1", nil)
			resp, err := rt.RoundTrip(req)
			if got := s.count(); got != tc.attempts {
				t.Errorf("attempts = %d, want %d", got, tc.attempts)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, status %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			resp.Body.Close()
			// Every discarded response was closed.
			for _, b := range s.resps[:len(s.resps)-1] {
				if !b.closed.Load() {
					t.Error("a discarded response body was not closed")
				}
			}
		})
	}
}

func TestExhaustedIsTyped(t *testing.T) {
	s := &script{codes: []int{503}}
	rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)))
	req, _ := http.NewRequest("GET", "http://svc/p?token=hunter2", nil)
	req.Header.Set("Authorization", "Bearer hunter2")
	resp, err := rt.RoundTrip(req)
	if resp != nil {
		t.Fatal("response returned with an error")
	}
	if !errors.Is(err, retry.ErrExhausted) {
		t.Fatalf("err = %v, want retry.ErrExhausted", err)
	}
	var se *httpmw.StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("err = %v, want *StatusError 503", err)
	}
	var ee *retry.ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts != 3 {
		t.Fatalf("err = %v, want 3 attempts", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks a secret: %v", err)
	}
	for i, b := range s.resps {
		if !b.closed.Load() {
			t.Errorf("response %d not closed", i)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, v := range []string{"2", time.Unix(1000, 0).UTC().Add(2 * time.Second).Format(http.TimeFormat)} {
		s := &script{codes: []int{503, 200}, header: http.Header{"Retry-After": {v}}}
		var ev retry.Event
		p := fastRetry(3)
		p.MaxPushback = time.Minute
		p.OnRetry = func(e retry.Event) { ev = e }
		clk := &instantClock{now: time.Unix(1000, 0)}
		p = retry.NewPolicy(*p, retry.WithClock(clk))
		rt := httpmw.NewRetry(s, httpmw.WithRetry(p), httpmw.WithClock(clk.Now))
		req, _ := http.NewRequest("GET", "http://svc/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ev.Pushback != 2*time.Second || ev.Delay < 2*time.Second {
			t.Fatalf("Retry-After %q: event %+v, want a 2s pushback", v, ev)
		}
	}
}

// instantClock is a retry.Clock whose timers fire at once; it records the
// durations asked for.
type instantClock struct {
	now   time.Time
	waits []time.Duration
}

func (c *instantClock) Now() time.Time { return c.now }
func (c *instantClock) NewTimer(d time.Duration) retry.Timer {
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.now.Add(d)
	return firedTimer{ch}
}

type firedTimer struct{ ch chan time.Time }

func (t firedTimer) C() <-chan time.Time { return t.ch }
func (t firedTimer) Stop() bool          { return false }

func TestRetryEligibility(t *testing.T) {
	post := func(ctx context.Context, key string) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://svc/", strings.NewReader("body"))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		return req
	}
	bg := context.Background()
	cases := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"POST without key: once", post(bg, ""), 1},
		{"POST with key: retried", post(bg, "k1"), 3},
		{"POST with opt-in: retried", post(httpmw.WithWriteRetry(bg), ""), 3},
		{"GET capped by WithMaxAttempts", func() *http.Request {
			r, _ := http.NewRequestWithContext(httpmw.WithMaxAttempts(bg, 2), "GET", "http://svc/", nil)
			return r
		}(), 2},
		{"PUT retried", func() *http.Request {
			r, _ := http.NewRequest("PUT", "http://svc/", strings.NewReader("x"))
			return r
		}(), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{codes: []int{503}}
			rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)))
			resp, err := rt.RoundTrip(tc.req)
			if got := s.count(); got != tc.want {
				t.Fatalf("attempts = %d, want %d", got, tc.want)
			}
			if tc.want == 1 {
				// Not retried: the 503 is a response, returned as is.
				if err != nil || resp.StatusCode != 503 {
					t.Fatalf("got %v, %v; want the 503 response", resp, err)
				}
				resp.Body.Close()
			} else if !errors.Is(err, retry.ErrExhausted) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// opaqueBody hides the reader so http.NewRequest sets no GetBody.
type opaqueBody struct{ io.Reader }

func (opaqueBody) Close() error { return nil }

func TestBodyReplay(t *testing.T) {
	payload := strings.Repeat("0123456789", 100)
	t.Run("GetBody", func(t *testing.T) {
		s := &script{codes: []int{503, 0, 200}}
		rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)))
		req, _ := http.NewRequest("PUT", "http://svc/", strings.NewReader(payload))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for i, b := range s.bodies {
			if b != payload {
				t.Fatalf("attempt %d body %d bytes, want %d", i+1, len(b), len(payload))
			}
		}
	})
	t.Run("buffered", func(t *testing.T) {
		s := &script{codes: []int{503, 0, 200}}
		rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)))
		req, _ := http.NewRequest("PUT", "http://svc/", opaqueBody{strings.NewReader(payload)})
		if req.GetBody != nil {
			t.Fatal("test needs a request without GetBody")
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(s.bodies) != 3 {
			t.Fatalf("%d attempts", len(s.bodies))
		}
		for i, b := range s.bodies {
			if b != payload {
				t.Fatalf("attempt %d body %d bytes, want %d", i+1, len(b), len(payload))
			}
		}
	})
	t.Run("largest cap: buffered, replayed", func(t *testing.T) {
		// limit+1 would wrap to a negative read limit: an empty body.
		s := &script{codes: []int{503, 200}}
		rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)), httpmw.WithBodyLimit(math.MaxInt64))
		req, _ := http.NewRequest("PUT", "http://svc/", opaqueBody{strings.NewReader(payload)})
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(s.bodies) != 2 || s.bodies[0] != payload || s.bodies[1] != payload {
			t.Fatalf("bodies %q, want the payload twice", s.bodies)
		}
	})
	t.Run("over the cap: sent once, whole", func(t *testing.T) {
		s := &script{codes: []int{503}}
		rt := httpmw.NewRetry(s, httpmw.WithRetry(fastRetry(3)), httpmw.WithBodyLimit(100))
		req, _ := http.NewRequest("PUT", "http://svc/", opaqueBody{strings.NewReader(payload)})
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(s.bodies) != 1 || s.bodies[0] != payload {
			t.Fatalf("attempts %d, first body %d bytes", len(s.bodies), len(s.bodies[0]))
		}
	})
}

func TestRequestNotMutated(t *testing.T) {
	m := testMap(t)
	s := &script{codes: []int{503, 503, 200}}
	rt := httpmw.New(s, httpmw.WithRetry(fastRetry(3)),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: 8080}))
	req, _ := http.NewRequest("GET", "http://orders/a?b=c", nil)
	req.Header.Set("X-Partition-Key", keyFor(t, m, 0))
	before := *req
	beforeURL := *req.URL
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if *req.URL != beforeURL || req.Host != before.Host || req.Method != before.Method || len(req.Header) != 1 {
		t.Fatalf("request mutated: %+v", req)
	}
	// Each attempt went to the next node, Host kept as the logical name.
	want := []string{"127.0.1.5:8080", "127.0.1.6:8080", "127.0.1.7:8080"}
	for i, r := range s.reqs {
		if r.URL.Host != want[i] || r.Host != "orders" || r.URL.RawQuery != "b=c" {
			t.Errorf("attempt %d: URL.Host %q Host %q", i+1, r.URL.Host, r.Host)
		}
	}
}

// A partition with more candidates than a call holds inline: every one is
// tried once, in order, before the attempts start over after the last.
func TestFailoverTriesEveryCandidateFirst(t *testing.T) {
	m, err := topology.Parse([]byte(`{"clusterEpoch":1,"masterNodeId":"m","partitionCount":1,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"127.0.1.1","replicaNodeIps":["127.0.1.2","127.0.1.3","127.0.1.4","127.0.1.5","127.0.1.6"],"hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := &script{codes: []int{503, 503, 503, 503, 503, 503, 503, 200}}
	rt := httpmw.New(s, httpmw.WithRetry(fastRetry(8)),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: 8080}))
	req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(context.Background(), "k"), "GET", "http://orders/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var got []string
	for _, r := range s.reqs {
		got = append(got, strings.TrimSuffix(strings.TrimPrefix(r.URL.Host, "127.0.1."), ":8080"))
	}
	if want := []string{"1", "2", "3", "4", "5", "6", "1", "2"}; !slices.Equal(got, want) {
		t.Errorf("attempts went to 127.0.1.%v, want %v", got, want)
	}
}

func TestFailoverRouting(t *testing.T) {
	m := testMap(t)
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, 0)
	svc := httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(m), Port: 8080}
	s := &script{}
	fo := httpmw.NewFailover(s, httpmw.WithService(svc), httpmw.WithBreakers(g))

	do := func(ctx context.Context, method, host string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+host+"/", nil)
		return fo.RoundTrip(req)
	}
	ctx1 := httpmw.WithPartitionKey(context.Background(), keyFor(t, m, 1))

	// Other hosts pass through untouched.
	if resp, err := do(ctx1, "GET", "other:9"); err != nil || s.reqs[0].URL.Host != "other:9" {
		t.Fatalf("pass-through: %v %v", resp, err)
	}
	// No key: a typed error, nothing sent.
	if _, err := do(context.Background(), "GET", "orders"); !errors.Is(err, httpmw.ErrNoPartitionKey) {
		t.Fatalf("no key: %v", err)
	}
	// An empty partition header is no key either, not the key "".
	empty, _ := http.NewRequest("GET", "http://orders/", nil)
	empty.Header.Set(httpmw.DefaultPartitionHeader, "")
	if _, err := fo.RoundTrip(empty); !errors.Is(err, httpmw.ErrNoPartitionKey) {
		t.Fatalf("empty key header: %v", err)
	}
	// Key from the context wins; first attempt goes to the primary.
	if _, err := do(ctx1, "GET", "orders"); err != nil || s.reqs[1].URL.Host != "127.0.2.5:8080" {
		t.Fatalf("primary: %v %s", err, s.reqs[1].URL.Host)
	}
	// Open the primary's breaker: reads go to the replica...
	done, _ := g.Get("127.0.2.5:8080").Allow()
	done(breaker.Failure)
	if _, err := do(ctx1, "GET", "orders"); err != nil || s.reqs[2].URL.Host != "127.0.2.6:8080" {
		t.Fatalf("replica: %v %s", err, s.reqs[2].URL.Host)
	}
	// ...a write fails fast with a typed error, nothing sent...
	n := s.count()
	_, err := do(ctx1, "POST", "orders")
	if !errors.Is(err, httpmw.ErrNoHealthyNode) || !errors.Is(err, breaker.ErrOpen) || s.count() != n {
		t.Fatalf("write: %v (sent %d)", err, s.count()-n)
	}
	var ne *httpmw.NodeError
	if !errors.As(err, &ne) || !ne.Write || ne.Partition != 1 {
		t.Fatalf("write: %#v", err)
	}
	// ...unless the caller opts in to write failover.
	if _, err := do(httpmw.WithWriteFailover(ctx1), "POST", "orders"); err != nil || s.reqs[n].URL.Host != "127.0.2.6:8080" {
		t.Fatalf("write failover: %v", err)
	}
	// Every node open: no healthy node.
	done, _ = g.Get("127.0.2.6:8080").Allow()
	done(breaker.Failure)
	_, err = do(ctx1, "GET", "orders")
	if !errors.Is(err, httpmw.ErrNoHealthyNode) {
		t.Fatalf("all open: %v", err)
	}
	if !errors.As(err, &ne) || ne.Write {
		t.Errorf("a read with every node open: %v, want a NodeError that is not about a write", err)
	}
	// A write that may fail over is not confined to the primary either.
	_, err = do(httpmw.WithWriteFailover(ctx1), "POST", "orders")
	if !errors.As(err, &ne) || ne.Write || strings.Contains(err.Error(), "write") {
		t.Errorf("a write with failover, every node open: %v, want a NodeError that is not about a write", err)
	}
	if httpmw.ErrNoHealthyNode.Error() != "httpmw: no healthy node" {
		t.Fatal(httpmw.ErrNoHealthyNode)
	}
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

func TestRejectionsCloseRequestBody(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, 0)
	done, _ := g.Get("svc").Allow()
	done(breaker.Failure)
	bg, _ := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 0)
	p, _ := bg.Get("svc").Acquire(context.Background())
	defer p.Release()
	lim, _ := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1})
	lim.Allow()
	cases := []struct {
		name string
		rt   http.RoundTripper
		want error
	}{
		{"breaker", httpmw.NewBreaker(&script{}, httpmw.WithBreakers(g)), breaker.ErrOpen},
		{"bulkhead", httpmw.NewBulkhead(&script{}, httpmw.WithBulkheads(bg)), bulkhead.ErrFull},
		{"ratelimit", httpmw.NewRateLimit(&script{}, httpmw.WithRateLimit(lim)), ratelimit.ErrLimited},
	}
	for _, tc := range cases {
		body := &closeCounter{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest("POST", "http://svc/", body)
		_, err := tc.rt.RoundTrip(req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if body.closes != 1 {
			t.Errorf("%s: body closed %d times", tc.name, body.closes)
		}
	}
}

func TestCallerCancelNeutral(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var calls int
	inner := httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		cancel()
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	rt := httpmw.Chain(inner, httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(3))), httpmw.BreakerMiddleware(httpmw.WithBreakers(g)))
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/", nil)
	_, err := rt.RoundTrip(req)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if st := g.Get("svc").State(); st != breaker.StateClosed {
		t.Fatalf("breaker %v after a caller cancellation", st)
	}
}

func TestAttemptTimeout(t *testing.T) {
	var calls int
	inner := httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			<-r.Context().Done() // the attempt timeout fires
			return nil, r.Context().Err()
		}
		return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader([]byte("ok"))), Request: r}, nil
	})
	p := fastRetry(3)
	p.AttemptTimeout = 20 * time.Millisecond
	rt := httpmw.NewRetry(inner, httpmw.WithRetry(p))
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The successful attempt's context is still alive while the body is read.
	if err := resp.Request.Context().Err(); err != nil {
		t.Fatalf("attempt context done before the body was read: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok" || calls != 2 {
		t.Fatalf("body %q after %d calls", b, calls)
	}
}

// swapTopology is a Topology whose map the test replaces, as a Watcher
// would on a new epoch.
type swapTopology struct{ m atomic.Pointer[topology.Map] }

func (s *swapTopology) Current() *topology.Map { return s.m.Load() }

func TestFailoverFollowsTopologyChanges(t *testing.T) {
	src := &swapTopology{}
	s := &script{}
	rt := httpmw.New(s, httpmw.WithRetry(fastRetry(1)),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: src, Port: 8080, PartitionHeader: "x-shard"}))
	send := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", "http://orders/", nil)
		req.Header.Set("X-Shard", "any-key")
		return rt.RoundTrip(req)
	}
	if _, err := send(); !errors.Is(err, httpmw.ErrNoTopology) {
		t.Fatalf("before the first map: %v", err)
	}
	src.m.Store(singleNodeMap(t, "127.0.3.1"))
	if _, err := send(); err != nil || s.reqs[0].URL.Host != "127.0.3.1:8080" {
		t.Fatalf("first map: %v", err)
	}
	next := singleNodeMap(t, "127.0.3.2:9090") // a promoted node, with its own port
	next.Epoch = 2
	src.m.Store(next)
	if _, err := send(); err != nil || s.reqs[1].URL.Host != "127.0.3.2:9090" {
		t.Fatalf("second map: %v (%s)", err, s.reqs[1].URL.Host)
	}
}

func TestParseRetryAfterAllocs(t *testing.T) {
	h := http.Header{"Retry-After": {"7"}}
	resp := &http.Response{StatusCode: 503, Header: h, Body: http.NoBody}
	_ = resp
	// Exercised through the retry layer: a pushback of 7s is seen.
	var ev retry.Event
	p := fastRetry(2)
	p.MaxPushback = time.Minute
	p.OnRetry = func(e retry.Event) { ev = e }
	p = retry.NewPolicy(*p, retry.WithClock(&instantClock{now: time.Now()}))
	s := &script{codes: []int{503, 200}, header: h}
	req, _ := http.NewRequest("GET", "http://svc/", nil)
	resp2, err := httpmw.NewRetry(s, httpmw.WithRetry(p)).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if ev.Pushback != 7*time.Second {
		t.Fatalf("pushback %v", ev.Pushback)
	}
	for _, bad := range []string{"-1", "soon", "1.5"} {
		s := &script{codes: []int{503, 200}, header: http.Header{"Retry-After": {bad}}}
		ev = retry.Event{}
		resp, err := httpmw.NewRetry(s, httpmw.WithRetry(p)).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ev.Pushback != 0 {
			t.Fatalf("Retry-After %q gave pushback %v", bad, ev.Pushback)
		}
	}
}

// A topology.Watcher is a Topology.
var _ httpmw.Topology = (*topology.Watcher)(nil)

// Retry budgets are per destination host, whatever its case: ORDERS and
// orders draw on one budget.
func TestRetryBudgetHostIgnoresCase(t *testing.T) {
	bs := retry.NewBudgets(retry.BudgetConfig{}, 0)
	rt := httpmw.NewRetry(&script{codes: []int{200}}, httpmw.WithRetry(fastRetry(2)), httpmw.WithRetryBudgets(bs))
	for _, u := range []string{"http://orders/x", "http://ORDERS/x", "http://Orders/x"} {
		req, _ := http.NewRequest("GET", u, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if st := bs.Get("orders").Stats(); st.Deposits != 3 {
		t.Fatalf("orders' budget has %d deposits, want 3 (one per call, whatever the case)", st.Deposits)
	}
}
