package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/clustertest"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
	"github.com/rampart-go/rampart/topology"
)

// drillConfig is what the drill's flags set.
type drillConfig struct {
	Duration   time.Duration // per scenario
	Rate       int           // logical calls per second
	WriteRatio float64       // share of calls that are writes
	GRPCRatio  float64       // share of calls sent over gRPC instead of HTTP
	Map        *topology.Map
	Live       io.Writer // progress lines once a second; nil for none
	Seed       uint64
}

// Tunables of the client under test. They are the drill's defaults, chosen
// for a loopback cluster: every figure the drill reports is read against them.
const (
	attemptTimeout   = 250 * time.Millisecond
	readDeadline     = 2 * time.Second
	writeDeadline    = 1 * time.Second
	retryBase        = 5 * time.Millisecond
	retryCap         = 100 * time.Millisecond
	retryMaxPushback = 1500 * time.Millisecond
	breakerTimeout   = 400 * time.Millisecond
	breakerProbes    = 2
	heartbeatEvery   = 100 * time.Millisecond
	heartbeatTimeout = 400 * time.Millisecond
	watchInterval    = 100 * time.Millisecond
	maxInFlight      = 512
	logicalHost      = "orders"
)

// scenario is one fault drill: what it breaks, when, and what it heals.
type scenario struct {
	name string
	doc  string
	// inject breaks something at 1/4 of the run and returns the nodes it
	// touched; heal, when not nil, runs at 3/4.
	inject func(c *clustertest.Cluster, m *topology.Map) []*clustertest.Node
	heal   func(nodes []*clustertest.Node) error
}

var scenarios = []scenario{
	{
		name: "primary-crash",
		doc:  "the primary of partition 0 crashes; the master promotes a replica",
		inject: func(c *clustertest.Cluster, m *topology.Map) []*clustertest.Node {
			n := c.Node(m.Partitions[0].Primary)
			n.Crash()
			return []*clustertest.Node{n}
		},
	},
	{
		name: "brownout",
		doc:  "the primary of partition 1 answers half of its requests with 503",
		inject: func(c *clustertest.Cluster, m *topology.Map) []*clustertest.Node {
			n := c.Node(m.Partitions[1].Primary)
			n.SetErrorRate(0.5)
			return []*clustertest.Node{n}
		},
		heal: healAll,
	},
	{
		name: "outage-recovery",
		doc:  "every node of partition 2 is down for half the run, then comes back",
		inject: func(c *clustertest.Cluster, m *topology.Map) []*clustertest.Node {
			p := m.Partitions[2]
			var nodes []*clustertest.Node
			for _, ip := range append([]string{p.Primary}, p.Replicas...) {
				n := c.Node(ip)
				n.Crash()
				nodes = append(nodes, n)
			}
			return nodes
		},
		heal: func(nodes []*clustertest.Node) error {
			var errs []error
			for _, n := range nodes {
				errs = append(errs, n.Recover())
			}
			return errors.Join(errs...)
		},
	},
	{
		name: "slow-node",
		doc:  "the primary of partition 1 adds 3 s to every answer",
		inject: func(c *clustertest.Cluster, m *topology.Map) []*clustertest.Node {
			n := c.Node(m.Partitions[1].Primary)
			n.SetLatency(3 * time.Second)
			return []*clustertest.Node{n}
		},
		heal: healAll,
	},
	{
		name: "throttled",
		doc:  "the primary of partition 0 answers 429 with Retry-After: 1",
		inject: func(c *clustertest.Cluster, m *topology.Map) []*clustertest.Node {
			n := c.Node(m.Partitions[0].Primary)
			n.SetThrottle(time.Second)
			return []*clustertest.Node{n}
		},
		heal: healAll,
	},
}

func healAll(nodes []*clustertest.Node) error {
	for _, n := range nodes {
		n.Heal()
	}
	return nil
}

func scenarioByName(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// runScenario starts a fresh cluster, drives load through the rampart HTTP
// preset, injects the scenario's fault and measures what callers and servers
// saw.
func runScenario(ctx context.Context, sc scenario, cfg drillConfig) (Result, error) {
	res := Result{Scenario: sc.name, DurationSeconds: cfg.Duration.Seconds(), ProbeCap: breakerProbes,
		AttemptTimeoutMs: ms(attemptTimeout), MaxBackoffMs: ms(retryCap)}
	goroutinesBefore := runtime.NumGoroutine()

	var epochChanges atomic.Int64
	cluster, err := clustertest.Start(cfg.Map,
		clustertest.WithHeartbeat(heartbeatEvery, heartbeatTimeout),
		clustertest.WithCloseTimeout(5*time.Second),
		clustertest.WithOnChange(func(clustertest.Change) { epochChanges.Add(1) }))
	if err != nil {
		return res, fmt.Errorf("start cluster: %w", err)
	}
	clusterClosed := false
	defer func() {
		if !clusterClosed {
			_ = cluster.Close()
		}
	}()

	cl, err := newDrillClient(ctx, cluster)
	if err != nil {
		return res, err
	}

	rec := newRecorder(time.Now(), cfg.Duration)
	load := &loadGen{client: cl, rec: rec, rate: cfg.Rate, writeRatio: cfg.WriteRatio, grpcRatio: cfg.GRPCRatio,
		rng: mrand.New(mrand.NewPCG(cfg.Seed, uint64(len(sc.name))))}

	runCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); load.run(runCtx) }()
	go func() { defer wg.Done(); cl.sampleLoop(runCtx, rec, cluster, sc.name, cfg.Live) }()

	// The schedule: fault at 1/4, heal at 3/4.
	var touched []*clustertest.Node
	phase := func(at time.Duration) bool {
		select {
		case <-runCtx.Done():
			return false
		case <-time.After(time.Until(rec.start.Add(at))):
			return true
		}
	}
	if phase(cfg.Duration / 4) {
		m := cluster.Map()
		rec.setFault(true)
		touched = sc.inject(cluster, m)
		if sc.heal != nil && phase(cfg.Duration*3/4) {
			if err := sc.heal(touched); err != nil {
				stopLoad()
				wg.Wait()
				load.wait()
				cl.close()
				return res, fmt.Errorf("heal: %w", err)
			}
			rec.setHealed(time.Now())
		}
	}
	<-runCtx.Done()
	wg.Wait()
	load.wait()

	// Figures from the servers.
	for _, n := range cluster.Nodes() {
		res.ServerRequests += n.Requests()
		res.BodyMismatches += n.BodyMismatches()
		res.BadTraceparents += n.BadTraceparents()
	}
	res.EpochChanges = epochChanges.Load()
	res.ShedCalls = load.shed.Load()
	rec.fill(&res)
	res.Nodes = cl.nodes
	cl.fill(ctx, &res)

	// Tear down and look for leaks.
	cl.close()
	clusterClosed = true
	if err := cluster.Close(); err != nil {
		return res, fmt.Errorf("close cluster: %w", err)
	}
	res.LeakedGoroutines = settleGoroutines(goroutinesBefore)
	return res, ctx.Err()
}

// settleGoroutines waits (bounded) for goroutines that are winding down and
// returns how many more there are than before.
func settleGoroutines(before int) int {
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before || time.Now().After(deadline) {
			return max(0, n-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drillClient is the rampart HTTP preset the drill tests, with the telemetry
// pipeline whose counts it reports.
type drillClient struct {
	http      *http.Client
	transport *http.Transport
	conn      *grpc.ClientConn
	echo      pb.EchoClient
	watcher   *topology.Watcher
	stopWatch context.CancelFunc
	watchDone chan struct{}
	breakers  *breaker.Group // HTTP, keyed by node ip:httpPort
	budgets   *retry.Budgets

	grpcBreakers *breaker.Group // gRPC, keyed by node ip:grpcPort
	tp           *sdktrace.TracerProvider
	spans        *spanCounter
	reader       *sdkmetric.ManualReader
	mp           *sdkmetric.MeterProvider
	port         int
	nodes        []string // every node address of the starting map, in order

	breakerOpens atomic.Int64
	probes       probeGauge
}

func newDrillClient(ctx context.Context, cluster *clustertest.Cluster) (*drillClient, error) {
	c := &drillClient{port: cluster.HTTPPort(), spans: &spanCounter{}}
	for _, ip := range cluster.Map().Nodes() {
		c.nodes = append(c.nodes, topology.SplitNode(ip, c.port))
	}

	// Topology from the master, polled.
	c.watcher = topology.NewWatcher(topology.HTTP(cluster.TopologyURL()), topology.WithInterval(watchInterval))
	wctx, stop := context.WithCancel(context.Background())
	c.stopWatch, c.watchDone = stop, make(chan struct{})
	go func() { defer close(c.watchDone); _ = c.watcher.Run(wctx) }()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.watcher.Wait(wait); err != nil {
		c.close()
		return nil, fmt.Errorf("first topology map: %w", err)
	}

	// Telemetry: the SDK with rampart's advice (ParentBased ratio sampler),
	// a span counter as the exporter side, and a manual metric reader.
	c.tp = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))),
		sdktrace.WithSpanProcessor(c.spans))
	c.reader = sdkmetric.NewManualReader()
	c.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(c.reader))
	tracer := sampling.NewTracer(sampling.WithTracerProvider(c.tp), sampling.WithMeterProvider(c.mp),
		sampling.WithRatio(0.01), sampling.WithResendCountKey("http.request.resend_count"))

	c.breakers = breaker.NewGroup(c.breakerSettings(), 0)
	bulkheads, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 128, MaxQueue: 64, MaxWait: 100 * time.Millisecond}, 0)
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.New(ratelimit.Config{Rate: rate.Limit(10000), Burst: 1000, MaxWait: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	c.budgets = retry.NewBudgets(retry.BudgetConfig{Ratio: 0.2, MinRetries: 20, Window: 2 * time.Second}, 0)
	policy := &retry.Policy{
		MaxAttempts:    3,
		BaseDelay:      retryBase,
		MaxDelay:       retryCap,
		AttemptTimeout: attemptTimeout,
		MaxPushback:    retryMaxPushback,
	}

	c.transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	base := &attemptCounter{next: c.transport, breakers: c.breakers, probes: &c.probes}
	rt := httpmw.New(base,
		httpmw.WithService(httpmw.Service{Host: logicalHost, Topology: c.watcher, Port: c.port}),
		httpmw.WithBreakers(c.breakers),
		httpmw.WithBulkheads(bulkheads),
		httpmw.WithRateLimit(limiter),
		httpmw.WithRetry(policy),
		httpmw.WithRetryBudgets(c.budgets),
		httpmw.WithTracer(tracer),
	)
	c.http = &http.Client{Transport: rt}

	// The gRPC preset: the same policies and telemetry, its own breakers
	// and bulkheads (keyed by the nodes' gRPC addresses), routed by the
	// topology resolver and balancer.
	grpcBulkheads, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 128, MaxQueue: 64, MaxWait: 100 * time.Millisecond}, 0)
	if err != nil {
		return nil, err
	}
	c.grpcBreakers = breaker.NewGroup(c.breakerSettings(), 0)
	c.conn, err = grpc.NewClient("topology:///"+logicalHost, append(grpcmw.DialOptions(
		grpcmw.WithWatcher(c.watcher),
		grpcmw.WithPort(cluster.GRPCPort()),
		grpcmw.WithBreakers(c.grpcBreakers),
		grpcmw.WithBulkheads(grpcBulkheads),
		grpcmw.WithRateLimit(limiter),
		grpcmw.WithRetry(policy),
		grpcmw.WithTracer(tracer),
	), grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Inside the preset's chain: runs once per attempt.
		grpc.WithChainUnaryInterceptor(countAttempts))...)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("grpc client: %w", err)
	}
	c.echo = pb.NewEchoClient(c.conn)
	return c, nil
}

// breakerSettings are the drill's breaker settings, shared by both transports.
func (c *drillClient) breakerSettings() breaker.Settings {
	return breaker.Settings{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              2 * time.Second,
		Timeout:             breakerTimeout,
		MaxProbes:           breakerProbes,
		OnStateChange: func(ev breaker.StateChange) {
			if ev.To == breaker.StateOpen {
				c.breakerOpens.Add(1)
			}
		},
	}
}

func (c *drillClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
	if c.stopWatch != nil {
		c.stopWatch()
		<-c.watchDone
	}
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	if c.tp != nil {
		_ = c.tp.Shutdown(context.Background())
	}
	if c.mp != nil {
		_ = c.mp.Shutdown(context.Background())
	}
}

// fill writes what the telemetry and the policies counted into res.
func (c *drillClient) fill(ctx context.Context, res *Result) {
	res.BreakerOpens = c.breakerOpens.Load()
	res.MaxProbesInHalfOpen = c.probes.max.Load()
	res.ErrorSpans = c.spans.failedCalls.Load()
	res.ErrorCallSpans = c.spans.errorCalls.Load()
	res.SampledSuccessSpans = c.spans.sampledOK.Load()
	var rm metricdata.ResourceMetrics
	if err := c.reader.Collect(ctx, &rm); err == nil {
		res.Failovers = sumCounter(rm, "rampart.failovers")
		res.RetryBudgetRefusals = sumCounter(rm, "rampart.retry_budget.refusals")
		if attempts := sumCounter(rm, "rampart.attempts"); res.Calls > 0 {
			res.AttemptsPerCall = round3(float64(attempts) / float64(res.Calls))
		}
	}
}

func sumCounter(rm metricdata.ResourceMetrics, name string) int64 {
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					total += dp.Value
				}
			}
		}
	}
	return total
}

// sampleLoop records the epoch and the breaker states four times a second
// and prints a progress line once a second when live is set.
func (c *drillClient) sampleLoop(ctx context.Context, rec *recorder, cluster *clustertest.Cluster, name string, live io.Writer) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastPrint := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			states := make([]int, len(c.nodes))
			open := 0
			for i, n := range c.nodes {
				states[i] = int(c.breakers.Get(n).State())
				if states[i] != 0 {
					open++
				}
			}
			epoch := cluster.Epoch()
			rec.sample(now, epoch, states)
			if live != nil && now.Sub(lastPrint) >= time.Second {
				lastPrint = now
				calls, success, p99 := rec.lastSecond(now)
				fmt.Fprintf(live, "%-16s t=%4.0fs calls/s=%5d success=%7.3f%% p99=%7.1fms breakers not closed=%d/%d epoch=%d\n",
					name, now.Sub(rec.start).Seconds(), calls, success*100, p99, open, len(c.nodes), epoch)
			}
		}
	}
}

// loadGen sends an open-loop mixed read/write load at a fixed rate.
type loadGen struct {
	client     *drillClient
	rec        *recorder
	rate       int
	writeRatio float64
	grpcRatio  float64
	rng        *mrand.Rand
	inflight   sync.WaitGroup
	slots      chan struct{}
	seq        atomic.Int64
	shed       atomic.Int64 // calls not sent: maxInFlight calls were in flight
}

func (l *loadGen) run(ctx context.Context) {
	l.slots = make(chan struct{}, maxInFlight)
	interval := time.Second / time.Duration(max(1, l.rate))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case l.slots <- struct{}{}:
		default:
			l.shed.Add(1) // every slot busy: the open loop sheds this call
			continue
		}
		key := fmt.Sprintf("user-%d", l.rng.IntN(10000))
		write := l.rng.Float64() < l.writeRatio
		overGRPC := l.rng.Float64() < l.grpcRatio
		l.inflight.Add(1)
		go func() {
			defer l.inflight.Done()
			defer func() { <-l.slots }()
			if overGRPC {
				l.callGRPC(key, write)
			} else {
				l.call(key, write)
			}
		}()
	}
}

func (l *loadGen) wait() { l.inflight.Wait() }

func (l *loadGen) call(key string, write bool) {
	deadline := readDeadline
	if write {
		deadline = writeDeadline
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	ctx = httpmw.WithPartitionKey(ctx, key)
	var attempts atomic.Int32
	ctx = context.WithValue(ctx, attemptsKey{}, &attempts)

	var req *http.Request
	if write {
		body := make([]byte, 256+len(key))
		_, _ = rand.Read(body[:256])
		copy(body[256:], key)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPut, "http://"+logicalHost+"/kv/"+key, bytes.NewReader(body))
		req.Header.Set(clustertest.HeaderBodySHA256, clustertest.BodySHA256(body))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("drill-%d", l.seq.Add(1)))
	} else {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+logicalHost+"/kv/"+key, nil)
	}
	start := time.Now()
	resp, err := l.client.http.Do(req)
	ok := err == nil
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		ok = resp.StatusCode < 400
	}
	end := time.Now()
	l.rec.call(end, !write, ok, end.Sub(start), int(attempts.Load()), deadline)
}

// callGRPC makes one logical Echo call through the gRPC preset: a write
// carries a payload and its checksum; a read is marked so it may fail over.
func (l *loadGen) callGRPC(key string, write bool) {
	deadline := readDeadline
	if write {
		deadline = writeDeadline
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req := &pb.EchoRequest{Key: key}
	opts := []grpc.CallOption{grpcmw.PartitionKey(key)}
	if write {
		req.Payload = make([]byte, 256)
		_, _ = rand.Read(req.Payload)
		req.Sha256 = clustertest.BodySHA256(req.Payload)
	} else {
		opts = append(opts, grpcmw.Read())
	}
	var attempts atomic.Int32
	ctx = context.WithValue(ctx, attemptsKey{}, &attempts)
	start := time.Now()
	_, err := l.client.echo.Echo(ctx, req, opts...)
	end := time.Now()
	l.rec.call(end, !write, err == nil, end.Sub(start), int(attempts.Load()), deadline)
}

// countAttempts is the interceptor under the gRPC preset's chain: it counts
// the attempts of each call, as attemptCounter does for HTTP.
func countAttempts(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if n, ok := ctx.Value(attemptsKey{}).(*atomic.Int32); ok {
		n.Add(1)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

type attemptsKey struct{}

// attemptCounter is the transport under the rampart chain: it counts the
// attempts of each call and the requests in flight to a node whose breaker
// is half-open (the probes).
type attemptCounter struct {
	next     http.RoundTripper
	breakers *breaker.Group
	probes   *probeGauge
}

func (a *attemptCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if n, ok := r.Context().Value(attemptsKey{}).(*atomic.Int32); ok {
		n.Add(1)
	}
	if a.breakers.Get(r.URL.Host).State() == breaker.StateHalfOpen {
		a.probes.enter(r.URL.Host)
		defer a.probes.leave(r.URL.Host)
	}
	return a.next.RoundTrip(r)
}

// probeGauge tracks the most requests in flight at once to one half-open node.
type probeGauge struct {
	mu  sync.Mutex
	cur map[string]int64
	max atomic.Int64
}

func (p *probeGauge) enter(node string) {
	p.mu.Lock()
	if p.cur == nil {
		p.cur = make(map[string]int64)
	}
	p.cur[node]++
	if v := p.cur[node]; v > p.max.Load() {
		p.max.Store(v)
	}
	p.mu.Unlock()
}

func (p *probeGauge) leave(node string) {
	p.mu.Lock()
	p.cur[node]--
	p.mu.Unlock()
}

// spanCounter is a span processor that counts the logical-call spans the
// SDK exports, by what the call did.
type spanCounter struct {
	failedCalls atomic.Int64 // calls that returned an error (status Error, outcome not success)
	errorCalls  atomic.Int64 // every call span with status Error (failed, or recovered after a failed attempt)
	sampledOK   atomic.Int64 // call spans without error: the head-sampled successes
}

func (s *spanCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (s *spanCounter) Shutdown(context.Context) error                  { return nil }
func (s *spanCounter) ForceFlush(context.Context) error                { return nil }

func (s *spanCounter) OnEnd(sp sdktrace.ReadOnlySpan) {
	if !sp.SpanContext().IsSampled() {
		return
	}
	var isCall bool
	var outcome string
	for _, kv := range sp.Attributes() {
		switch kv.Key {
		case sampling.AttrAttempts:
			isCall = true
		case sampling.AttrOutcome:
			outcome = kv.Value.AsString()
		}
	}
	if !isCall {
		return
	}
	switch {
	case sp.Status().Code == codes.Error && outcome != "success" && outcome != "neutral":
		s.failedCalls.Add(1)
		s.errorCalls.Add(1)
	case sp.Status().Code == codes.Error:
		s.errorCalls.Add(1)
	default:
		s.sampledOK.Add(1)
	}
}

var _ sdktrace.SpanProcessor = (*spanCounter)(nil)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
