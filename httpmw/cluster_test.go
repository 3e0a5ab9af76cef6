package httpmw_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// clusterMap is a two-partition cluster: partition 0 has a primary and two
// replicas, partition 1 a primary and one replica.
func clusterMap(tb testing.TB) *topology.Map {
	tb.Helper()
	m, err := topology.Parse([]byte(`{"clusterEpoch":1,"masterNodeId":"m","partitionCount":2,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"127.0.11.5","replicaNodeIps":["127.0.11.6","127.0.11.7"],"hashRangeStart":"00000000","hashRangeEnd":"7fffffff"},
	 {"partitionIndex":1,"primaryNodeIp":"127.0.12.5","replicaNodeIps":["127.0.12.6"],"hashRangeStart":"80000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// countingTransport is an http.Transport whose dials are counted.
func countingTransport(tb testing.TB) (*http.Transport, *atomic.Int64) {
	var dials atomic.Int64
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return loopbackDial(ctx, d, network, addr)
		},
		MaxIdleConnsPerHost: 16,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return tr, &dials
}

// loopbackDial dials addr with d if it is a loopback IP address, and fails
// otherwise without a DNS lookup: a request that should have been routed
// to a node but was passed through fails in the test, not on the network.
func loopbackDial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer: %s is not a loopback address", addr)
	}
	return d.DialContext(ctx, network, addr)
}

type env struct {
	c     *clustertest.Cluster
	m     *topology.Map
	tr    *http.Transport
	dials *atomic.Int64
	bg    *breaker.Group
	rt    http.RoundTripper
	key0  string // a key of partition 0
	key1  string
}

func newEnv(t *testing.T, opts ...httpmw.Option) *env {
	t.Helper()
	m := clusterMap(t)
	c := clustertest.New(t, m)
	tr, dials := countingTransport(t)
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 3, Timeout: time.Hour}, 0)
	svc := httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(c.Map()), Port: c.HTTPPort()}
	all := append([]httpmw.Option{
		httpmw.WithService(svc), httpmw.WithBreakers(bg), httpmw.WithRetry(fastRetry(3)),
	}, opts...)
	return &env{c: c, m: c.Map(), tr: tr, dials: dials, bg: bg, rt: httpmw.New(tr, all...),
		key0: keyFor(t, m, 0), key1: keyFor(t, m, 1)}
}

func (e *env) get(t *testing.T, key string) (*http.Response, error) {
	t.Helper()
	ctx := httpmw.WithPartitionKey(context.Background(), key)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://orders/item?id=1", nil)
	return e.rt.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Crash the primary: reads keep succeeding through the replicas, with no
// error the caller can see, and the primary's breaker opens.
func TestClusterCrashPrimaryReadsFailOver(t *testing.T) {
	e := newEnv(t)
	primary := e.c.Node("127.0.11.5")
	for i := 0; i < 20; i++ { // warm up: served by the primary
		resp, err := e.get(t, e.key0)
		if err != nil {
			t.Fatal(err)
		}
		if n := resp.Header.Get(clustertest.HeaderNode); n != "127.0.11.5" {
			t.Fatalf("served by %s before the crash", n)
		}
		readAll(t, resp)
	}
	primary.Crash()
	served := map[string]int{}
	for i := 0; i < 200; i++ {
		resp, err := e.get(t, e.key0)
		if err != nil {
			t.Fatalf("read %d after the crash: %v", i, err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("read %d: status %d", i, resp.StatusCode)
		}
		served[resp.Header.Get(clustertest.HeaderNode)]++
		readAll(t, resp)
	}
	if served["127.0.11.5"] != 0 || served["127.0.11.6"] == 0 {
		t.Fatalf("served by %v", served)
	}
	primaryAddr := net.JoinHostPort("127.0.11.5", strconv.Itoa(e.c.HTTPPort()))
	if st := e.bg.Get(primaryAddr).State(); st != breaker.StateOpen {
		t.Fatalf("primary's breaker is %v", st)
	}
	// A write finds the primary's breaker open: typed error, at once.
	ctx := httpmw.WithPartitionKey(context.Background(), e.key0)
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://orders/item", bytes.NewReader([]byte("x")))
	req.Header.Set("Idempotency-Key", "w1")
	_, err := e.rt.RoundTrip(req)
	if !errors.Is(err, httpmw.ErrNoHealthyNode) || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("write: %v", err)
	}
	// The other partition never noticed.
	resp, err := e.get(t, e.key1)
	if err != nil || resp.Header.Get(clustertest.HeaderNode) != "127.0.12.5" {
		t.Fatalf("partition 1: %v", err)
	}
	readAll(t, resp)
}

// A 503 brownout on one node opens its breaker and traffic moves to the
// replica; the caller sees no error.
func TestClusterBrownoutOpensBreaker(t *testing.T) {
	e := newEnv(t)
	primary := e.c.Node("127.0.12.5")
	primary.SetErrorRate(1)
	for i := 0; i < 100; i++ {
		resp, err := e.get(t, e.key1)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if got := resp.Header.Get(clustertest.HeaderNode); got != "127.0.12.6" {
			t.Fatalf("read %d served by %s", i, got)
		}
		readAll(t, resp)
	}
	addr := net.JoinHostPort("127.0.12.5", strconv.Itoa(e.c.HTTPPort()))
	if st := e.bg.Get(addr).State(); st != breaker.StateOpen {
		t.Fatalf("breaker %v", st)
	}
	// Once open, the primary gets no more traffic.
	if n := primary.Requests(); n != 3 {
		t.Fatalf("primary got %d requests, want 3 (ConsecutiveFailures)", n)
	}
}

// A write confined to the primary waits out a 429's Retry-After: 1, on the
// retry package's clock; no other node may take it.
func TestClusterRetryAfterWaited(t *testing.T) {
	clk := &instantClock{now: time.Now()}
	var node *clustertest.Node
	var ev retry.Event
	p := fastRetry(3)
	p.MaxPushback = 10 * time.Second
	p.OnRetry = func(e retry.Event) { ev = e; node.Heal() }
	p = retry.NewPolicy(*p, retry.WithClock(clk))
	e := newEnv(t, httpmw.WithRetry(p))
	node = e.c.Node("127.0.11.5")
	node.SetThrottle(time.Second)
	ctx := httpmw.WithPartitionKey(context.Background(), e.key0)
	req, _ := http.NewRequestWithContext(ctx, "PUT", "http://orders/item?id=1", strings.NewReader("v"))
	resp, err := e.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if ev.Pushback != time.Second || ev.Delay < time.Second || len(clk.waits) != 1 || clk.waits[0] < time.Second {
		t.Fatalf("event %+v, waits %v: want at least the 1s Retry-After", ev, clk.waits)
	}
	var se *httpmw.StatusError
	if !errors.As(ev.Err, &se) || se.Code != 429 {
		t.Fatalf("retried on %v", ev.Err)
	}
	if n := node.Requests(); n != 2 {
		t.Fatalf("primary got %d requests, want 2", n)
	}
}

// manualNow is a clock for httpmw.WithClock that moves only when told.
type manualNow struct{ ns atomic.Int64 }

func newManualNow() *manualNow {
	c := new(manualNow)
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *manualNow) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualNow) advance(d time.Duration) { c.ns.Add(int64(d)) }

// A read whose node answers 429 with Retry-After: 1 goes on to a replica
// after the usual backoff instead of waiting a second, and the node gets no
// request from any call until its second is over.
func TestClusterRetryAfterReadMovesOn(t *testing.T) {
	clk := newManualNow()
	var events []retry.Event
	p := fastRetry(3)
	p.MaxPushback = 10 * time.Second
	p.OnRetry = func(e retry.Event) { events = append(events, e) }
	e := newEnv(t, httpmw.WithRetry(p), httpmw.WithClock(clk.now))
	primary := e.c.Node("127.0.11.5")
	primary.SetThrottle(time.Second)
	for i := 0; i < 20; i++ {
		resp, err := e.get(t, e.key0)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	if len(events) != 1 || events[0].Pushback != 0 || events[0].Delay >= time.Second {
		t.Fatalf("retries %+v: want one, after the usual backoff", events)
	}
	if n := primary.Requests(); n != 1 {
		t.Fatalf("throttled primary got %d requests, want 1", n)
	}
	if n := e.c.Node("127.0.11.6").Requests(); n != 20 {
		t.Fatalf("first replica got %d requests, want 20", n)
	}
	// Its second over, the primary is the first candidate again.
	primary.Heal()
	clk.advance(time.Second)
	resp, err := e.get(t, e.key0)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if n := primary.Requests(); n != 2 || len(events) != 1 {
		t.Fatalf("primary got %d requests, retries %d: want 2 and 1", n, len(events))
	}
}

// When every candidate of a read is throttled, the loop waits for the one
// free soonest and sends the next attempt there.
func TestClusterRetryAfterAllThrottled(t *testing.T) {
	clk := newManualNow()
	nodes := make([]*clustertest.Node, 3)
	var events []retry.Event
	p := fastRetry(4)
	p.MaxPushback = 10 * time.Second
	p.OnRetry = func(ev retry.Event) {
		events = append(events, ev)
		if ev.Pushback > 0 { // the wait: time passes, the primary's pause ends
			clk.advance(ev.Delay)
			nodes[0].Heal()
		}
	}
	p = retry.NewPolicy(*p, retry.WithClock(&instantClock{now: time.Now()}))
	e := newEnv(t, httpmw.WithRetry(p), httpmw.WithClock(clk.now))
	for i, ip := range []string{"127.0.11.5", "127.0.11.6", "127.0.11.7"} {
		nodes[i] = e.c.Node(ip)
		nodes[i].SetThrottle(time.Duration(i+1) * time.Second)
	}
	resp, err := e.get(t, e.key0)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if len(events) != 3 || events[0].Pushback != 0 || events[1].Pushback != 0 || events[2].Pushback != time.Second {
		t.Fatalf("retries %+v: want two at once, then a 1s wait for the primary", events)
	}
	for i, want := range []int64{2, 1, 1} {
		if n := nodes[i].Requests(); n != want {
			t.Fatalf("node %d got %d requests, want %d", i, n, want)
		}
	}
}

// A POST without an idempotency key is sent once; its 503 is handed back.
func TestClusterPostWithoutKeyNotRetried(t *testing.T) {
	e := newEnv(t, httpmw.WithBreakers(breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 100}, 0)))
	node := e.c.Node("127.0.11.5")
	node.SetErrorRate(1)
	ctx := httpmw.WithPartitionKey(context.Background(), e.key0)
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://orders/orders", bytes.NewReader([]byte("new order")))
	resp, err := e.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != 503 || node.Requests() != 1 {
		t.Fatalf("status %d, %d requests; want one 503", resp.StatusCode, node.Requests())
	}
	// With a key it is retried (on the primary only: a write).
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://orders/orders", bytes.NewReader([]byte("new order")))
	req.Header.Set("Idempotency-Key", "order-1")
	_, err = e.rt.RoundTrip(req)
	if !errors.Is(err, retry.ErrExhausted) || node.Requests() != 4 {
		t.Fatalf("err %v, %d requests", err, node.Requests())
	}
	for _, ip := range []string{"127.0.11.6", "127.0.11.7"} {
		if n := e.c.Node(ip).Requests(); n != 0 {
			t.Fatalf("write reached replica %s", ip)
		}
	}
}

// Thousands of retried requests with bodies, half replayed through GetBody
// and half through the buffer: the nodes see 0 checksum mismatches.
func TestClusterBodyChecksums(t *testing.T) {
	e := newEnv(t, httpmw.WithRetry(fastRetry(4)))
	// A third of the requests to every primary fail: many retries.
	e.bg = nil
	for _, ip := range []string{"127.0.11.5", "127.0.12.5"} {
		e.c.Node(ip).SetErrorRate(1.0 / 3)
	}
	// Breakers would stop the brownout from producing retries: use a chain
	// without them.
	rt := httpmw.Chain(e.tr, httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(4))),
		httpmw.FailoverMiddleware(httpmw.WithService(httpmw.Service{
			Host: "orders", Topology: httpmw.FixedTopology(e.m), Port: e.c.HTTPPort(), WriteFailover: true})))
	const total, workers = 2000, 8
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				body := make([]byte, 100+i%3000)
				rand.Read(body)
				var rd io.Reader = bytes.NewReader(body)
				if i%2 == 1 {
					rd = opaqueBody{rd} // no GetBody: the buffer replays it
				}
				key := e.key0
				if i%3 == 0 {
					key = e.key1
				}
				ctx, cancel := context.WithTimeout(httpmw.WithPartitionKey(context.Background(), key), 10*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://orders/put", rd)
				req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
				req.Header.Set(clustertest.HeaderBodySHA256, clustertest.BodySHA256(body))
				resp, err := rt.RoundTrip(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	var reqs, mismatches int64
	for _, n := range e.c.Nodes() {
		reqs += n.Requests()
		mismatches += n.BodyMismatches()
	}
	if mismatches != 0 || failed.Load() != 0 {
		t.Fatalf("%d mismatches, %d failed calls over %d requests", mismatches, failed.Load(), reqs)
	}
	if reqs < total+total/10 {
		t.Fatalf("only %d requests for %d calls: too few retries to test replay", reqs, total)
	}
	t.Logf("%d calls, %d requests, 0 mismatches", total, reqs)
}

// 1,000 failing calls (3 attempts each, every response a 503) do not grow
// the number of connections: every discarded body is drained and closed.
func TestClusterNoConnectionLeak(t *testing.T) {
	e := newEnv(t)
	node := e.c.Node("127.0.11.5")
	node.SetErrorRate(1)
	rt := httpmw.Chain(e.tr, httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(3))))
	url := "http://" + node.HTTPAddr() + "/fail?x=1"
	var fresh, reused atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				reused.Add(1)
			} else {
				fresh.Add(1)
			}
		},
	})
	for i := 0; i < 1000; i++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		_, err := rt.RoundTrip(req)
		var se *httpmw.StatusError
		if !errors.As(err, &se) || !errors.Is(err, retry.ErrExhausted) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := node.Requests(); n != 3000 {
		t.Fatalf("%d requests, want 3000", n)
	}
	if d, f := e.dials.Load(), fresh.Load(); d > 2 || f > 2 || reused.Load() < 2998 {
		t.Fatalf("%d dials, %d new and %d reused connections for 3000 sequential requests: connections leak", d, f, reused.Load())
	}
}

// waitSignal is a watcher that tells the test when a request waits on it.
type waitSignal struct {
	*topology.Watcher
	waiting chan struct{}
	once    sync.Once
}

func (w *waitSignal) Wait(ctx context.Context) (*topology.Map, error) {
	w.once.Do(func() { close(w.waiting) })
	return w.Watcher.Wait(ctx)
}

// A request that arrives before the watcher's first map waits for it
// (bounded by Service.TopologyWait) instead of failing with ErrNoTopology.
func TestClusterFirstMapWaitedFor(t *testing.T) {
	m := clusterMap(t)
	c := clustertest.New(t, m)
	key := keyFor(t, m, 0)
	newRT := func(top httpmw.Topology, wait time.Duration) http.RoundTripper {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		return httpmw.New(tr, httpmw.WithService(httpmw.Service{
			Host: "orders", Topology: top, Port: c.HTTPPort(), TopologyWait: wait}))
	}
	get := func(rt http.RoundTripper) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(httpmw.WithPartitionKey(t.Context(), key), "GET", "http://orders/item", nil)
		return rt.RoundTrip(req)
	}

	// A watcher that never runs: the wait is bounded, or skipped.
	idle := topology.NewWatcher(topology.HTTP(c.TopologyURL()))
	for _, wait := range []time.Duration{-1, 20 * time.Millisecond} {
		if _, err := get(newRT(idle, wait)); !errors.Is(err, httpmw.ErrNoTopology) {
			t.Fatalf("TopologyWait %v, no map ever: %v", wait, err)
		}
	}
	// The request's own deadline ends the wait: the error says both.
	ctx, cancelReq := context.WithTimeout(httpmw.WithPartitionKey(t.Context(), key), 20*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://orders/item", nil)
	_, err := newRT(idle, time.Minute).RoundTrip(req)
	cancelReq()
	if !errors.Is(err, httpmw.ErrNoTopology) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request deadline during the wait: %v, want ErrNoTopology and DeadlineExceeded", err)
	}

	w := &waitSignal{Watcher: topology.NewWatcher(topology.HTTP(c.TopologyURL())), waiting: make(chan struct{})}
	rt := newRT(w, time.Minute)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := get(rt)
		done <- result{resp, err}
	}()
	<-w.waiting // the request is waiting for the first map: start the watcher
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = w.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	r := <-done
	if r.err != nil {
		t.Fatalf("request that waited for the first map: %v", r.err)
	}
	readAll(t, r.resp)
}

// With failover above the retry layer (Chain allows any order) every attempt
// of a call goes to the node failover chose once, so a Retry-After from it
// is waited out rather than skipped for a replica the attempts cannot reach.
func TestClusterRetryAfterFailoverAbove(t *testing.T) {
	m := clusterMap(t)
	c := clustertest.New(t, m)
	tr, _ := countingTransport(t)
	var events []retry.Event
	p := fastRetry(2)
	p.MaxPushback = 10 * time.Second
	p.OnRetry = func(ev retry.Event) { events = append(events, ev) }
	p = retry.NewPolicy(*p, retry.WithClock(&instantClock{now: time.Now()}))
	svc := httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(c.Map()), Port: c.HTTPPort()})
	rt := httpmw.Chain(tr, httpmw.FailoverMiddleware(svc), httpmw.RetryMiddleware(httpmw.WithRetry(p)))
	primary := c.Node("127.0.11.5")
	primary.SetThrottle(time.Second)
	ctx := httpmw.WithPartitionKey(context.Background(), keyFor(t, m, 0))
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://orders/item", nil)
	resp, err := rt.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("want the throttled node's 429 after the retries")
	}
	if len(events) != 1 || events[0].Pushback != time.Second {
		t.Fatalf("retries %+v: want one, after the 1s Retry-After", events)
	}
	if n := primary.Requests(); n != 2 {
		t.Fatalf("primary got %d requests, want both attempts", n)
	}
}

// The caller's own middleware between Retry and Failover, deriving each
// attempt's context (as a tracing or logging layer does; here it also sets
// the partition key), cloning the request to add a header, and sending a
// request of its own through the same client first (a token fetch), keeps
// the call one call: the retry after the primary's 503 goes to a replica.
func TestClusterMiddlewareBetweenRetryAndFailover(t *testing.T) {
	e := newEnv(t)
	e.c.Node("127.0.11.5").SetErrorRate(1) // partition 0's primary: 503s
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer token.Close()
	var rt http.RoundTripper
	var derived atomic.Int32
	mw := func(next http.RoundTripper) http.RoundTripper {
		return httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Host == token.Listener.Addr().String() {
				return next.RoundTrip(r)
			}
			derived.Add(1)
			treq, _ := http.NewRequestWithContext(r.Context(), "GET", token.URL, nil)
			tresp, err := rt.RoundTrip(treq) // through the whole client
			if err != nil {
				return nil, err
			}
			tresp.Body.Close()
			r = r.WithContext(httpmw.WithPartitionKey(r.Context(), e.key0))
			if derived.Load()%2 == 0 {
				// The usual way to add a header without touching the
				// request: a deep copy, with its own URL.
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer t")
			}
			return next.RoundTrip(r)
		})
	}
	rt = httpmw.Chain(e.tr, httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(3))), mw,
		httpmw.FailoverMiddleware(httpmw.WithService(httpmw.Service{
			Host: "orders", Topology: httpmw.FixedTopology(e.m), Port: e.c.HTTPPort()}), httpmw.WithBreakers(e.bg)),
		httpmw.BreakerMiddleware(httpmw.WithBreakers(e.bg)))
	req, _ := http.NewRequest("GET", "http://orders/item?id=1", nil) // no key: the middleware sets it
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("read with a replica up: %v", err)
	}
	if node := readAll(t, resp); resp.StatusCode != 200 || node == "127.0.11.5" {
		t.Fatalf("status %d from %q, want 200 from a replica", resp.StatusCode, node)
	}
	if n := e.c.Node("127.0.11.5").Requests(); n != 1 {
		t.Errorf("primary got %d requests, want 1 (the first attempt)", n)
	}
	if n := derived.Load(); n != 2 {
		t.Errorf("middleware saw %d attempts, want 2", n)
	}
}

// Host names ignore case: a request for "ORDERS" (or a service configured
// as "Orders") is routed like one for "orders", not passed through.
func TestClusterHostIgnoresCase(t *testing.T) {
	m := clusterMap(t)
	c := clustertest.New(t, m)
	tr, _ := countingTransport(t)
	rt := httpmw.New(tr, httpmw.WithRetry(fastRetry(1)), httpmw.WithService(httpmw.Service{
		Host: "Orders", Topology: httpmw.FixedTopology(c.Map()), Port: c.HTTPPort()}))
	for _, url := range []string{"http://orders/item", "http://ORDERS/item", "http://oRdErS/item"} {
		ctx := httpmw.WithPartitionKey(context.Background(), keyFor(t, m, 1))
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", url, err) // passed through: no such host
		}
		if n := resp.Header.Get(clustertest.HeaderNode); n != "127.0.12.5" {
			t.Fatalf("%s: served by %q", url, n)
		}
		readAll(t, resp)
	}
}
