package grpcmw_test

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/clustertest"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// loadMap reads the three-partition map of clustertest's test data.
func loadMap(t testing.TB) *topology.Map {
	t.Helper()
	data, err := os.ReadFile("../clustertest/testdata/three-partitions.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := topology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keyFor returns a key whose partition has the given index in m.
func keyFor(t testing.TB, m *topology.Map, index int) string {
	t.Helper()
	for i := 0; i < 10000; i++ {
		k := "key-" + strconv.Itoa(i)
		if m.Lookup(k).Index == index {
			return k
		}
	}
	t.Fatal("no key found")
	return ""
}

// runWatcher runs w until the test ends and waits for its first map.
func runWatcher(t testing.TB, w *topology.Watcher) *topology.Watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := w.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	return w
}

// env is a cluster, a running watcher of its map and a ClientConn made by
// the preset.
type env struct {
	c     *clustertest.Cluster
	w     *topology.Watcher
	conn  *grpc.ClientConn
	echo  pb.EchoClient
	epoch chan int64 // epochs the watcher puts in use
}

func newEnv(t *testing.T, copts []clustertest.Option, opts ...grpcmw.Option) *env {
	t.Helper()
	c := clustertest.New(t, loadMap(t), copts...)
	w := topology.NewWatcher(topology.HTTP(c.TopologyURL()), topology.WithInterval(20*time.Millisecond))
	e := &env{c: c, w: w, epoch: make(chan int64, 64)}
	cancelSub := w.Subscribe(func(m *topology.Map) {
		select {
		case e.epoch <- m.Epoch:
		default:
		}
	})
	t.Cleanup(cancelSub)
	runWatcher(t, w)
	opts = append([]grpcmw.Option{grpcmw.WithWatcher(w), grpcmw.WithPort(c.GRPCPort())}, opts...)
	conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(opts...),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	e.conn, e.echo = conn, pb.NewEchoClient(conn)
	t.Cleanup(func() { _ = conn.Close() })
	return e
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRoutesByKey(t *testing.T) {
	e := newEnv(t, nil)
	m := e.w.Current()
	for i := 0; i < 3; i++ {
		key := keyFor(t, m, i)
		reply, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key, Payload: []byte("hi")}, grpcmw.PartitionKey(key))
		if err != nil {
			t.Fatalf("partition %d: %v", i, err)
		}
		if want := m.Lookup(key).Primary; reply.Node != want {
			t.Errorf("partition %d: served by %s, want primary %s", i, reply.Node, want)
		}
	}
}

func TestPrimaryCrash(t *testing.T) {
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute}, 0)
	e := newEnv(t, []clustertest.Option{clustertest.WithHeartbeat(25*time.Millisecond, 1500*time.Millisecond)},
		grpcmw.WithBreakers(bg), grpcmw.WithRetry(&retry.Policy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}))
	m := e.w.Current()
	key := keyFor(t, m, 0)
	primary, replica := m.Partitions[0].Primary, m.Partitions[0].Replicas[0]
	req := &pb.EchoRequest{Key: key, Payload: []byte("x")}

	// Warm up: a write goes to the primary.
	if r, err := e.echo.Echo(callCtx(t), req, grpcmw.PartitionKey(key)); err != nil || r.Node != primary {
		t.Fatalf("write before crash: %v, %v", r, err)
	}
	startEpoch := m.Epoch
	e.c.Node(primary).Crash()

	// Reads keep succeeding through a replica.
	for i := 0; i < 5; i++ {
		r, err := e.echo.Echo(callCtx(t), req, grpcmw.PartitionKey(key), grpcmw.Read())
		if err != nil {
			t.Fatalf("read %d after crash: %v", i, err)
		}
		if r.Node != replica {
			t.Errorf("read %d served by %s, want replica %s", i, r.Node, replica)
		}
	}
	// Writes fail fast with Unavailable and a breaker-open cause.
	_, err := e.echo.Echo(callCtx(t), req, grpcmw.PartitionKey(key))
	if e.w.Current().Epoch != startEpoch {
		t.Skip("the master promoted a replica before the write; machine too slow for this check")
	}
	if status.Code(err) != codes.Unavailable || !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, grpcmw.ErrNoHealthyNode) {
		t.Fatalf("write while primary down: code %v, err %v; want Unavailable matching breaker.ErrOpen", status.Code(err), err)
	}

	// A write that may go to any node fails over like a read.
	if r, err := e.echo.Echo(callCtx(t), req, grpcmw.PartitionKey(key), grpcmw.WriteAnyNode()); err != nil || r.Node != replica {
		t.Errorf("WriteAnyNode while primary down: %v, %v; want served by %s", r, err, replica)
	}

	// After the master promotes the replica, writes go to it.
	for ep := range e.epoch {
		if ep > startEpoch {
			break
		}
	}
	r, err := e.echo.Echo(callCtx(t), req, grpcmw.PartitionKey(key))
	if err != nil {
		t.Fatalf("write after promotion: %v", err)
	}
	if r.Node != replica {
		t.Errorf("write after promotion served by %s, want new primary %s", r.Node, replica)
	}
}

func TestStreamRetryBeforeFirstMessage(t *testing.T) {
	tr, exp := newTracer(t)
	e := newEnv(t, nil, grpcmw.WithRetry(&retry.Policy{BaseDelay: time.Millisecond}), grpcmw.WithTracer(tr))
	m := e.w.Current()
	key := keyFor(t, m, 1)
	primary, replica := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	e.c.Node(primary).InterruptStreams(0)

	st, err := e.echo.Stream(callCtx(t), &pb.StreamRequest{Key: key, Count: 3}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Recv %d: %v", n, err)
		}
		if r.Node != replica || r.Seq != int32(n) {
			t.Errorf("reply %d: node %s seq %d, want %s seq %d", n, r.Node, r.Seq, replica, n)
		}
		n++
	}
	if n != 3 {
		t.Errorf("got %d replies, want 3", n)
	}
	// The interrupted attempt made the call errored: exported with both
	// attempts.
	if got := len(exp.GetSpans()); got != 3 {
		t.Errorf("exported %d spans, want 3 (call and two attempts)", got)
	}
}

func TestStreamNotRetriedAfterFirstMessage(t *testing.T) {
	e := newEnv(t, nil, grpcmw.WithRetry(&retry.Policy{BaseDelay: time.Millisecond}))
	m := e.w.Current()
	key := keyFor(t, m, 1)
	primary, replica := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	e.c.Node(primary).InterruptStreams(1)

	st, err := e.echo.Stream(callCtx(t), &pb.StreamRequest{Key: key, Count: 3}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil || r.Node != primary {
		t.Fatalf("first reply: %v, %v; want one from %s", r, err, primary)
	}
	_, err = st.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("second Recv: %v, want Unavailable", err)
	}
	if got := e.c.Node(replica).Requests(); got != 0 {
		t.Errorf("replica saw %d requests, want 0 (no retry after the first message)", got)
	}
}

func TestThrottledPrimaryPushback(t *testing.T) {
	e := newEnv(t, nil, grpcmw.WithRetry(&retry.Policy{BaseDelay: time.Millisecond}))
	m := e.w.Current()
	key := keyFor(t, m, 2)
	primary, replica := m.Partitions[2].Primary, m.Partitions[2].Replicas[0]
	e.c.Node(primary).SetThrottle(5 * time.Millisecond)
	r, err := e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil || r.Node != replica {
		t.Fatalf("read with throttled primary: %v, %v; want served by %s", r, err, replica)
	}
	// A write has nowhere else to go: RESOURCE_EXHAUSTED comes back.
	_, err = e.echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("write with throttled primary: %v, want ResourceExhausted", err)
	}
}

func TestDialTimeCallOptions(t *testing.T) {
	c := clustertest.New(t, loadMap(t))
	m := c.Map()
	key := keyFor(t, m, 0)
	primary := m.Partitions[0].Primary
	w := runWatcher(t, topology.NewWatcher(topology.Static(m)))
	conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(
		grpcmw.WithWatcher(w), grpcmw.WithPort(c.GRPCPort()), grpcmw.WithRetry(fastRetry)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpcmw.PartitionKey(key), grpcmw.MaxAttempts(1)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := pb.NewEchoClient(conn)
	c.Node(primary).SetErrorRate(1)
	_, err = echo.Echo(callCtx(t), &pb.EchoRequest{Key: key})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v, want Unavailable", err)
	}
	if n := c.Node(primary).Requests(); n != 1 {
		t.Errorf("primary saw %d requests, want 1 (dial-time MaxAttempts(1))", n)
	}
	// A per-call option overrides the dial-time one.
	_, err = echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.MaxAttempts(3), grpcmw.Read())
	if err != nil {
		t.Fatalf("read with MaxAttempts(3): %v", err)
	}
}

// The balancer works alone: no rampart interceptor, the route in the
// context, and the picker skips a crashed primary for a read.
func TestBalancerAlone(t *testing.T) {
	c := clustertest.New(t, loadMap(t))
	m := c.Map()
	key := keyFor(t, m, 1)
	primary, replica := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	w := runWatcher(t, topology.NewWatcher(topology.Static(m)))
	r := grpcmw.NewRouter(w, grpcmw.WithPort(c.GRPCPort()))
	conn, err := grpc.NewClient("topology:///echo", grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(grpcmw.ServiceConfig),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := pb.NewEchoClient(conn)
	ctx := grpcmw.ContextWithRoute(callCtx(t), grpcmw.Route{Key: key, Access: grpcmw.AccessRead})
	if reply, err := echo.Echo(ctx, &pb.EchoRequest{Key: key}); err != nil || reply.Node != primary {
		t.Fatalf("before crash: %v, %v; want %s", reply, err, primary)
	}
	c.Node(primary).Crash()
	// The first call after the crash may still meet the dying connection;
	// once the picker knows, reads go to the replica.
	var last error
	for i := 0; i < 20; i++ {
		reply, err := echo.Echo(ctx, &pb.EchoRequest{Key: key})
		if err == nil {
			if reply.Node != replica {
				t.Fatalf("after crash: served by %s, want %s", reply.Node, replica)
			}
			return
		}
		last = err
	}
	t.Fatalf("reads after crash kept failing: %v", last)
}

// instantClock is a retry clock whose timers fire at once.
type instantClock struct{}

func (instantClock) Now() time.Time { return time.Now() }
func (instantClock) NewTimer(time.Duration) retry.Timer {
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return firedTimer(ch)
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time { return t }
func (firedTimer) Stop() bool            { return false }

// A pushback is about the node that sent it: a read goes on to a replica
// after the usual backoff instead of waiting, no call sends the node
// anything until its pushback is over, and a write, which only the primary
// takes, waits it out.
func TestThrottledNodeSkipped(t *testing.T) {
	c := clustertest.New(t, loadMap(t))
	w := runWatcher(t, topology.NewWatcher(topology.HTTP(c.TopologyURL())))
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	r := grpcmw.NewRouter(w, grpcmw.WithPort(c.GRPCPort()))
	grpcmw.SetRouterClock(r, func() time.Time { return time.Unix(0, now.Load()) })
	var (
		mu     sync.Mutex
		events []retry.Event
	)
	p := retry.NewPolicy(retry.Policy{BaseDelay: time.Millisecond, MaxPushback: 10 * time.Second,
		OnRetry: func(ev retry.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }},
		retry.WithClock(instantClock{}))
	conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(grpcmw.WithRouter(r), grpcmw.WithRetry(p)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := pb.NewEchoClient(conn)
	taken := func() []retry.Event {
		mu.Lock()
		defer mu.Unlock()
		evs := events
		events = nil
		return evs
	}

	m := w.Current()
	key := keyFor(t, m, 2)
	primary, replica := c.Node(m.Partitions[2].Primary), m.Partitions[2].Replicas[0]
	primary.SetThrottle(time.Second)
	for i := 0; i < 10; i++ {
		reply, err := echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read())
		if err != nil || reply.Node != replica {
			t.Fatalf("read %d: %v, %v; want served by %s", i, reply, err, replica)
		}
	}
	if evs := taken(); len(evs) != 1 || evs[0].Pushback != 0 || evs[0].Delay >= time.Second {
		t.Fatalf("retries %+v: want one, after the usual backoff", evs)
	}
	if n := primary.Requests(); n != 1 {
		t.Fatalf("throttled primary got %d calls, want 1", n)
	}

	// Its second over, the primary serves reads again.
	primary.Heal()
	now.Add(int64(time.Second))
	reply, err := echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key), grpcmw.Read())
	if err != nil || reply.Node != primary.IP() {
		t.Fatalf("read after the pushback: %v, %v; want the primary", reply, err)
	}

	// A write waits the pushback out, on the retry clock.
	primary.SetThrottle(time.Second)
	_, err = echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("write to a throttled primary: %v, want ResourceExhausted", err)
	}
	evs := taken()
	if len(evs) == 0 {
		t.Fatal("write was not retried")
	}
	for _, ev := range evs {
		if ev.Pushback != time.Second {
			t.Fatalf("write retries %+v: want each to wait the 1s pushback", evs)
		}
	}
}

// gatedSource yields its map once open is closed.
type gatedSource struct {
	m    *topology.Map
	open chan struct{}
}

func (s *gatedSource) Fetch(ctx context.Context) (*topology.Map, error) {
	select {
	case <-s.open:
		return s.m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// A call that starts before the watcher's first map waits for it (within
// WithTopologyWait and its own context) instead of failing at once; a call
// that gets no map fails once, not once per attempt.
func TestFirstMapWaitedFor(t *testing.T) {
	c := clustertest.New(t, loadMap(t))
	m := c.Map()
	key := keyFor(t, m, 0)
	dial := func(r *grpcmw.Router) pb.EchoClient {
		conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(grpcmw.WithRouter(r),
			grpcmw.WithRetry(&retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond})),
			grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return pb.NewEchoClient(conn)
	}
	router := func(w *topology.Watcher, wait time.Duration, waits *atomic.Int32) *grpcmw.Router {
		r := grpcmw.NewRouter(w, grpcmw.WithPort(c.GRPCPort()), grpcmw.WithTopologyWait(wait))
		grpcmw.SetRouterWaitHook(r, func() { waits.Add(1) })
		return r
	}

	// No map ever: the wait is bounded, or skipped, and not repeated by
	// the retry step.
	idle := topology.NewWatcher(topology.Static(m))
	for _, wait := range []time.Duration{-1, 20 * time.Millisecond} {
		var waits atomic.Int32
		_, err := dial(router(idle, wait, &waits)).Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
		if status.Code(err) != codes.Unavailable || !errors.Is(err, grpcmw.ErrNoTopology) {
			t.Fatalf("TopologyWait %v, no map ever: %v", wait, err)
		}
		want := int32(1) // one wait for the whole call, not one per attempt
		if wait < 0 {
			want = 0
		}
		if waits.Load() != want {
			t.Fatalf("TopologyWait %v: waited %d times, want %d", wait, waits.Load(), want)
		}
	}
	// The call's own deadline ends the wait: the error says both.
	var waits atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := dial(router(idle, time.Minute, &waits)).Echo(ctx, &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
	cancel()
	if !errors.Is(err, grpcmw.ErrNoTopology) || !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call deadline during the wait: %v, want ErrNoTopology and DeadlineExceeded, with code DeadlineExceeded", err)
	}
	// The same through the failover interceptor alone, with no retry step
	// to restate the code: a caller that gave up is told so.
	alone := router(idle, time.Minute, &waits)
	conn, err := grpc.NewClient("topology:///echo", grpc.WithResolvers(alone), grpc.WithDefaultServiceConfig(grpcmw.ServiceConfig),
		grpc.WithChainUnaryInterceptor(grpcmw.UnaryFailover(alone)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel = context.WithCancel(context.Background())
	grpcmw.SetRouterWaitHook(alone, cancel) // the caller gives up once the call waits
	_, err = pb.NewEchoClient(conn).Echo(ctx, &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
	if !errors.Is(err, grpcmw.ErrNoTopology) || status.Code(err) != codes.Canceled {
		t.Fatalf("caller cancelled during the wait, failover alone: %v, want ErrNoTopology with code Canceled", err)
	}

	// The map comes while the call waits.
	src := &gatedSource{m: m, open: make(chan struct{})}
	w := topology.NewWatcher(src)
	wctx, wcancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = w.Run(wctx) }()
	defer func() { wcancel(); <-stopped }()
	r := grpcmw.NewRouter(w, grpcmw.WithPort(c.GRPCPort()))
	waiting := make(chan struct{})
	grpcmw.SetRouterWaitHook(r, func() { close(waiting) })
	echo := dial(r)
	done := make(chan error, 1)
	go func() {
		_, err := echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
		done <- err
	}()
	<-waiting // the call is waiting for the first map: let it come
	close(src.open)
	if err := <-done; err != nil {
		t.Fatalf("call that waited for the first map: %v", err)
	}
}

// mapSource is a topology.Source that yields whatever map it holds.
type mapSource struct{ m atomic.Pointer[topology.Map] }

func (s *mapSource) Fetch(ctx context.Context) (*topology.Map, error) { return s.m.Load(), ctx.Err() }

// withPartition returns a validated copy of m with epoch and partition i's
// nodes replaced.
func withPartition(t *testing.T, m *topology.Map, epoch int64, i int, primary string, replicas ...string) *topology.Map {
	t.Helper()
	c := *m
	c.Epoch = epoch
	c.Partitions = slices.Clone(m.Partitions)
	c.Partitions[i].Primary, c.Partitions[i].Replicas = primary, replicas
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestCallAfterEpochChangeWaitsForPicker: a call routed by a new map before
// its ClientConn's balancer has that map (the watcher updates subscribers
// one after another) waits for the new picker instead of failing on a node
// the old picker does not know, and does not count against that node.
func TestCallAfterEpochChangeWaitsForPicker(t *testing.T) {
	m := loadMap(t)
	c := clustertest.New(t, m)
	x, y := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	src := &mapSource{}
	src.m.Store(withPartition(t, m, 100, 1, x)) // y is in no map yet
	v2 := withPartition(t, m, 101, 1, y, x)     // y is partition 1's primary
	w := topology.NewWatcher(src, topology.WithInterval(5*time.Millisecond))
	key := keyFor(t, m, 1)
	var echo atomic.Pointer[pb.EchoClient]
	type result struct {
		node string
		err  error
	}
	got := make(chan result, 1)
	// Subscribed before the ClientConn's resolver, so called first.
	w.Subscribe(func(nm *topology.Map) {
		if nm.Epoch != v2.Epoch {
			return
		}
		go func() {
			reply, err := (*echo.Load()).Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
			got <- result{reply.GetNode(), err}
		}()
		time.Sleep(100 * time.Millisecond) // the call meets this ClientConn's old picker
	})
	runWatcher(t, w)
	bg := breaker.NewGroup(breaker.Settings{}, 0)
	conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(grpcmw.WithWatcher(w),
		grpcmw.WithPort(c.GRPCPort()), grpcmw.WithBreakers(bg), grpcmw.WithRetry(&retry.Policy{MaxAttempts: 1})),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := pb.NewEchoClient(conn)
	echo.Store(&client)
	if reply, err := client.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key)); err != nil || reply.Node != x {
		t.Fatalf("before the change: %v, %v; want %s", reply, err, x)
	}
	src.m.Store(v2)
	select {
	case r := <-got:
		if r.err != nil || r.node != y {
			t.Fatalf("the call after the change: node %q, %v; want %s", r.node, r.err, y)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call after the change never ended")
	}
	yAddr := topology.SplitNode(y, c.GRPCPort())
	if n := bg.Get(yAddr).Counts().TotalFailures; n != 0 {
		t.Errorf("%d failures counted against %s, a healthy new primary", n, yAddr)
	}
}

// The reverse of TestCallAfterEpochChangeWaitsForPicker: the failover step
// pins a call by the map in use (x primary); before the attempt is picked,
// a new map drops x (y primary) and this ClientConn's balancer already has
// it. The attempt fails, for the retry step to route again, but x, healthy
// and never contacted, gets no failure on its breaker (it did).
func TestStaleRouteToRemovedNode(t *testing.T) {
	m := loadMap(t)
	c := clustertest.New(t, m)
	x, y := m.Partitions[1].Primary, m.Partitions[1].Replicas[0]
	src := &mapSource{}
	src.m.Store(withPartition(t, m, 100, 1, x)) // y in no map
	v2 := withPartition(t, m, 101, 1, y)        // x in no map
	w := runWatcher(t, topology.NewWatcher(src, topology.WithInterval(5*time.Millisecond)))
	key := keyFor(t, m, 1)
	var hold atomic.Bool
	hook := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if hold.Load() { // the attempt's node is chosen: now the map changes
			src.m.Store(v2)
			for i := 0; i < 400 && w.Current().Epoch != v2.Epoch; i++ {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // the ClientConn's balancer gets v2
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	bg := breaker.NewGroup(breaker.Settings{}, 0)
	conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(grpcmw.WithWatcher(w),
		grpcmw.WithPort(c.GRPCPort()), grpcmw.WithBreakers(bg), grpcmw.WithRetry(&retry.Policy{MaxAttempts: 1})),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithChainUnaryInterceptor(hook))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	echo := pb.NewEchoClient(conn)
	if reply, err := echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key)); err != nil || reply.Node != x {
		t.Fatalf("before the change: %v, %v; want %s", reply, err, x)
	}
	hold.Store(true)
	_, err = echo.Echo(callCtx(t), &pb.EchoRequest{Key: key}, grpcmw.PartitionKey(key))
	hold.Store(false)
	xAddr := topology.SplitNode(x, c.GRPCPort())
	if n := bg.Get(xAddr).Counts().TotalFailures; n != 0 {
		t.Errorf("call err %v; %d failure(s) counted against %s, a healthy node the new map dropped", err, n, xAddr)
	}
}
