package httpmw_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/coldcache"
	"github.com/rampart-go/rampart/internal/cputime"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
	"github.com/rampart-go/rampart/topology"
)

// cannedRT answers every request with a fresh copy of a canned response:
// no network, one small allocation.
type cannedRT struct{ code int }

func (c cannedRT) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: c.code, Body: http.NoBody, Request: r}, nil
}

// singleNodeMap maps every key to one node.
func singleNodeMap(tb testing.TB, node string) *topology.Map {
	m, err := topology.Parse([]byte(`{"clusterEpoch":1,"masterNodeId":"m","partitionCount":1,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"` + node + `","replicaNodeIps":[],"hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// rampartPreset is the full preset: tracing at 1% (SDK providers, no
// exporter), rate limit, retry, failover, breaker, bulkhead.
func rampartPreset(tb testing.TB, next http.RoundTripper, node string, port int, breakerTrips uint32, traced bool) http.RoundTripper {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tb.Cleanup(func() { _ = tp.Shutdown(tb.Context()); _ = mp.Shutdown(tb.Context()) })
	tracer := sampling.NewTracer(sampling.WithRatio(0.01), sampling.WithTracerProvider(tp), sampling.WithMeterProvider(mp))
	lim, err := ratelimit.New(ratelimit.Config{Rate: rate.Limit(1e9), Burst: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	if !traced {
		tracer = nil
	}
	// The retry waits run on a clock whose timers have already fired: the
	// benchmark measures the work, not the scheduler's timer resolution.
	pol := retry.NewPolicy(*fastRetry(3), retry.WithClock(zeroClock{}))
	return httpmw.New(next,
		httpmw.WithTracer(tracer),
		httpmw.WithRateLimit(lim),
		httpmw.WithRetry(pol),
		httpmw.WithBreakers(breaker.NewGroup(breaker.Settings{ConsecutiveFailures: breakerTrips}, 0)),
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: httpmw.FixedTopology(singleNodeMap(tb, node)), Port: port}),
	)
}

// failsafePreset is set by bench_failsafe_test.go: failsafehttp with retry,
// circuit breaker, bulkhead and rate limiter.
var failsafePreset func(next http.RoundTripper, breakerTrips uint) http.RoundTripper

func runFailsafe(b *testing.B, next http.RoundTripper, trips uint, url string, wantErr bool) {
	b.Run("failsafe", func(b *testing.B) {
		if failsafePreset == nil {
			b.Skip("failsafe-go peer not linked in")
		}
		benchRT(b, failsafePreset(next, trips), url, wantErr)
	})
}

func benchRT(b *testing.B, rt http.RoundTripper, url string, wantErr bool) {
	benchRTEach(b, rt, url, wantErr, nil)
}

// benchRTEach is benchRT with before run ahead of every call, if not nil;
// it then also reports call-ns/op, the time of the calls alone.
func benchRTEach(b *testing.B, rt http.RoundTripper, url string, wantErr bool, before func()) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set(httpmw.DefaultPartitionHeader, "customer-42")
	b.ReportAllocs()
	b.ResetTimer()
	var inCalls time.Duration
	for b.Loop() {
		var start time.Time
		if before != nil {
			before()
			start = time.Now()
		}
		resp, err := rt.RoundTrip(req)
		if before != nil {
			inCalls += time.Since(start)
		}
		if wantErr {
			if err == nil && resp.StatusCode < 500 {
				b.Fatal("want a failure")
			}
			if err == nil {
				resp.Body.Close()
			}
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if before != nil {
		b.ReportMetric(float64(inCalls.Nanoseconds())/float64(b.N), "call-ns/op")
	}
}

// BenchmarkStub: the success path in process, against a canned response.
func BenchmarkStub(b *testing.B) {
	next := cannedRT{code: 200}
	b.Run("bare", func(b *testing.B) { benchRT(b, next, "http://orders/item?id=1", false) })
	b.Run("rampart", func(b *testing.B) {
		benchRT(b, rampartPreset(b, next, "127.0.0.1", 8080, 0, true), "http://orders/item?id=1", false)
	})
	b.Run("rampart-untraced", func(b *testing.B) {
		benchRT(b, rampartPreset(b, next, "127.0.0.1", 8080, 0, false), "http://orders/item?id=1", false)
	})
	runFailsafe(b, next, 5, "http://orders/item?id=1", false)
}

// BenchmarkStubCold is BenchmarkStub with the core's caches emptied before
// every call (coldcache.Evict), as the network stack and the server empty
// them between two calls of a real client: the chain's cost in a busy
// process is rampart's call-ns/op minus bare's.
func BenchmarkStubCold(b *testing.B) {
	next := cannedRT{code: 200}
	const url = "http://orders/item?id=1"
	b.Run("bare", func(b *testing.B) { benchRTEach(b, next, url, false, coldcache.Evict) })
	b.Run("rampart", func(b *testing.B) {
		benchRTEach(b, rampartPreset(b, next, "127.0.0.1", 8080, 0, true), url, false, coldcache.Evict)
	})
	b.Run("rampart-untraced", func(b *testing.B) {
		benchRTEach(b, rampartPreset(b, next, "127.0.0.1", 8080, 0, false), url, false, coldcache.Evict)
	})
	b.Run("failsafe", func(b *testing.B) {
		if failsafePreset == nil {
			b.Skip("failsafe-go peer not linked in")
		}
		benchRTEach(b, failsafePreset(next, 5), url, false, coldcache.Evict)
	})
}

// BenchmarkStubFailure: every attempt answers 503; 3 attempts, near-zero
// delay; breakers set never to trip so that every call runs its attempts.
func BenchmarkStubFailure(b *testing.B) {
	next := cannedRT{code: 503}
	b.Run("rampart", func(b *testing.B) {
		benchRT(b, rampartPreset(b, next, "127.0.0.1", 8080, 1<<31, true), "http://orders/item?id=1", true)
	})
	b.Run("rampart-untraced", func(b *testing.B) {
		benchRT(b, rampartPreset(b, next, "127.0.0.1", 8080, 1<<31, false), "http://orders/item?id=1", true)
	})
	runFailsafe(b, next, 1<<31, "http://orders/item?id=1", true)
}

// loopbackServer starts an HTTP server on loopback for the benchmark and
// returns its URL, host and port, and a maker of fresh transports with
// maxIdle idle connections per host, closed when their benchmark ends.
func loopbackServer(b *testing.B, maxIdle int) (url, host string, port int, tr func(*testing.B) *http.Transport) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(srv.Close)
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ = strconv.Atoi(portS)
	return srv.URL, host, port, func(b *testing.B) *http.Transport {
		t := &http.Transport{MaxIdleConnsPerHost: maxIdle}
		b.Cleanup(t.CloseIdleConnections)
		return t
	}
}

// BenchmarkLoopback: the success path over a loopback HTTP server, one
// call at a time (the latency of a call).
func BenchmarkLoopback(b *testing.B) {
	url, host, port, tr := loopbackServer(b, 8)
	b.Run("bare", func(b *testing.B) { benchRT(b, tr(b), url+"/item?id=1", false) })
	b.Run("rampart", func(b *testing.B) {
		benchRT(b, rampartPreset(b, tr(b), host, port, 0, true), "http://orders/item?id=1", false)
	})
	runFailsafe(b, tr(b), 5, url+"/item?id=1", false)
}

// benchRTParallel is benchRT from 8×GOMAXPROCS goroutines: enough calls in
// flight to measure throughput rather than the latency of one call (as
// grpcmw's BenchmarkLoopback does).
func benchRTParallel(b *testing.B, rt http.RoundTripper, url string) {
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set(httpmw.DefaultPartitionHeader, "customer-42")
		for pb.Next() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	// The whole process's CPU time (client and server) per call.
	if ns, ok := cputime.PerOp(cpu0, b.N); ok {
		b.ReportMetric(ns, "cpu-ns/op")
	}
}

// BenchmarkLoopbackParallel: the success path over a loopback HTTP server
// with many calls in flight, the throughput a busy service sees.
func BenchmarkLoopbackParallel(b *testing.B) {
	url, host, port, tr := loopbackServer(b, 64)
	b.Run("bare", func(b *testing.B) { benchRTParallel(b, tr(b), url+"/item?id=1") })
	b.Run("rampart", func(b *testing.B) {
		benchRTParallel(b, rampartPreset(b, tr(b), host, port, 0, true), "http://orders/item?id=1")
	})
	b.Run("rampart-untraced", func(b *testing.B) {
		benchRTParallel(b, rampartPreset(b, tr(b), host, port, 0, false), "http://orders/item?id=1")
	})
	b.Run("failsafe", func(b *testing.B) {
		if failsafePreset == nil {
			b.Skip("failsafe-go peer not linked in")
		}
		benchRTParallel(b, failsafePreset(tr(b), 5), url+"/item?id=1")
	})
	// The floor's steps alone (bench_floor_test.go): what any chain with
	// the preset's features costs at the least.
	b.Run("floor", func(b *testing.B) {
		benchRTParallel(b, newFloorRT(tr(b), net.JoinHostPort(host, strconv.Itoa(port))), "http://orders/item?id=1")
	})
}

// zeroClock is a retry.Clock whose timers fire at once, allocation-free.
type zeroClock struct{}

var firedCh = func() chan time.Time { c := make(chan time.Time); close(c); return c }()

func (zeroClock) Now() time.Time                     { return time.Now() }
func (zeroClock) NewTimer(time.Duration) retry.Timer { return zeroTimer{} }

type zeroTimer struct{}

func (zeroTimer) C() <-chan time.Time { return firedCh }
func (zeroTimer) Stop() bool          { return false }
