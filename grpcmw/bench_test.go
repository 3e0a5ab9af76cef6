package grpcmw_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/clustertest"
	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/internal/coldcache"
	"github.com/rampart-go/rampart/internal/cputime"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
	"github.com/rampart-go/rampart/topology"
)

// benchEcho runs Echo calls on conn from 8×GOMAXPROCS goroutines.
func benchEcho(b *testing.B, conn *grpc.ClientConn, key string, opts ...grpc.CallOption) {
	echo := pb.NewEchoClient(conn)
	ctx := context.Background()
	req := &pb.EchoRequest{Key: key, Payload: []byte("ping")}
	if _, err := echo.Echo(ctx, req, opts...); err != nil { // connect
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // enough calls in flight to measure throughput, not latency
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := echo.Echo(ctx, req, opts...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// The whole process's CPU time (client and server) per call.
	if ns, ok := cputime.PerOp(cpu0, b.N); ok {
		b.ReportMetric(ns, "cpu-ns/op")
	}
}

// BenchmarkLoopback compares a bare ClientConn to one node with the preset
// chain over the topology resolver and balancer (and with tracing at 1%),
// on the same loopback cluster. Compare ratios within one run: the
// absolute numbers move with the machine's load.
func BenchmarkLoopback(b *testing.B) {
	m := loadMap(b)
	c := clustertest.New(b, m)
	key := keyFor(b, m, 0)
	primary := c.Node(m.Partitions[0].Primary)

	b.Run("bare", func(b *testing.B) {
		conn, err := grpc.NewClient(primary.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		benchEcho(b, conn, key)
	})
	b.Run("balancer", func(b *testing.B) {
		w := runWatcher(b, topology.NewWatcher(topology.Static(m)))
		r := grpcmw.NewRouter(w, grpcmw.WithPort(c.GRPCPort()))
		conn, err := grpc.NewClient("topology:///echo", grpc.WithResolvers(r),
			grpc.WithDefaultServiceConfig(grpcmw.ServiceConfig), grpc.WithDisableRetry(),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		benchEcho(b, conn, key, grpcmw.PartitionKey(key))
	})
	b.Run("preset", func(b *testing.B) {
		w := runWatcher(b, topology.NewWatcher(topology.Static(m)))
		conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(
			grpcmw.WithWatcher(w), grpcmw.WithPort(c.GRPCPort())),
			grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		benchEcho(b, conn, key, grpcmw.PartitionKey(key))
	})
	b.Run("traced", func(b *testing.B) {
		// The preset with tracing at 1%, spans going nowhere.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		tr := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithRatio(0.01),
			sampling.WithPropagator(propagation.TraceContext{}))
		w := runWatcher(b, topology.NewWatcher(topology.Static(m)))
		conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(
			grpcmw.WithWatcher(w), grpcmw.WithPort(c.GRPCPort()), grpcmw.WithTracer(tr)),
			grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		benchEcho(b, conn, key, grpcmw.PartitionKey(key))
	})
}

// chainUnary composes interceptors outermost first, as
// grpc.WithChainUnaryInterceptor does.
func chainUnary(ics []grpc.UnaryClientInterceptor, final grpc.UnaryInvoker) grpc.UnaryInvoker {
	inv := final
	for i := len(ics) - 1; i >= 0; i-- {
		ic, next := ics[i], inv
		inv = func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return ic(ctx, method, req, reply, cc, next, opts...)
		}
	}
	return inv
}

// stubSteps is what the interceptors need to run without a network: a key
// of partition 0, a Router over a static map with its breakers, a bulkhead
// group, and an invoker that succeeds at once.
func stubSteps(tb testing.TB) (key string, r *grpcmw.Router, bg *breaker.Group, hg *bulkhead.Group, ok grpc.UnaryInvoker) {
	m := loadMap(tb)
	key = keyFor(tb, m, 0)
	w := runWatcher(tb, topology.NewWatcher(topology.Static(m)))
	bg = breaker.NewGroup(breaker.Settings{}, 0)
	hg, err := bulkhead.NewGroup(bulkhead.Config{}, 0)
	if err != nil {
		tb.Fatal(err)
	}
	r = grpcmw.NewRouter(w, grpcmw.WithPort(7070), grpcmw.WithBreakers(bg))
	ok = func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	return key, r, bg, hg, ok
}

// BenchmarkInterceptors measures the interceptors alone against an invoker
// that succeeds at once.
func BenchmarkInterceptors(b *testing.B) {
	key, r, bg, hg, ok := stubSteps(b)
	cases := []struct {
		name string
		ics  []grpc.UnaryClientInterceptor
	}{
		{"none", nil},
		{"retry", []grpc.UnaryClientInterceptor{grpcmw.UnaryRetry(retry.NewPolicy(retry.Policy{}))}},
		{"failover", []grpc.UnaryClientInterceptor{grpcmw.UnaryFailover(r)}},
		{"breaker", []grpc.UnaryClientInterceptor{grpcmw.UnaryBreaker(bg)}},
		{"bulkhead", []grpc.UnaryClientInterceptor{grpcmw.UnaryBulkhead(hg)}},
		{"chain", []grpc.UnaryClientInterceptor{
			grpcmw.UnaryRetry(retry.NewPolicy(retry.Policy{})), grpcmw.UnaryFailover(r),
			grpcmw.UnaryBreaker(bg), grpcmw.UnaryBulkhead(hg)}},
		// The same steps as the preset installs them: one interceptor.
		{"preset", []grpc.UnaryClientInterceptor{grpcmw.PresetUnary(
			grpcmw.WithRouter(r), grpcmw.WithBreakers(bg), grpcmw.WithBulkheads(hg))}},
	}
	opt := grpcmw.PartitionKey(key)
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			inv := chainUnary(tc.ics, ok)
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := inv(ctx, "/echo/Echo", nil, nil, nil, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The same with the core's caches emptied before every call, as the
		// network stack and the server empty them between two real calls:
		// the steps' cost in a busy process is this case's call-ns/op (the
		// time of the calls alone) minus none-cold's.
		b.Run(tc.name+"-cold", func(b *testing.B) {
			inv := chainUnary(tc.ics, ok)
			ctx := context.Background()
			b.ReportAllocs()
			var inCalls time.Duration
			for i := 0; i < b.N; i++ {
				coldcache.Evict()
				start := time.Now()
				if err := inv(ctx, "/echo/Echo", nil, nil, nil, opt); err != nil {
					b.Fatal(err)
				}
				inCalls += time.Since(start)
			}
			b.ReportMetric(float64(inCalls.Nanoseconds())/float64(b.N), "call-ns/op")
		})
		// The same from 8×GOMAXPROCS goroutines, as the loopback benchmark
		// calls: what the steps' shared state costs under contention.
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			inv := chainUnary(tc.ics, ok)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := inv(ctx, "/echo/Echo", nil, nil, nil, opt); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
