// Command telemetry shows rampart's traces and metrics in the OpenTelemetry
// pipeline a service already has: spans go out over OTLP/HTTP
// (otlptracehttp) and metrics are served in the Prometheus text format
// (the OpenTelemetry Prometheus exporter and promhttp).
//
// rampart samples about 1% of successful calls and still exports every call
// that saw an error. To show it, the program starts on loopback a two-
// partition cluster, a tiny OTLP/HTTP receiver that counts the spans it gets,
// and a /metrics endpoint. It sends reads, makes the primary of partition 0
// fail every request (its breaker opens, reads fail over to the replica),
// sends writes that fail (writes go to the primary only), then prints the
// /metrics lines for breaker state, retries and failovers, and how many spans
// were exported for failed and successful calls.
//
// Run it with:
//
//	go run ./examples/telemetry
//
// It exits with status 1 if an errored call was not exported.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
	"github.com/rampart-go/rampart/topology"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "telemetry:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	ctx := context.Background()

	// Telemetry backends on loopback: an OTLP/HTTP receiver and /metrics.
	receiver := &spanCounter{}
	otlpURL, stopOTLP, err := serve(receiver)
	if err != nil {
		return err
	}
	defer stopOTLP()
	registry := prometheus.NewRegistry()
	metricsURL, stopMetrics, err := serve(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	if err != nil {
		return err
	}
	defer stopMetrics()

	// The service's OpenTelemetry SDK: an OTLP span exporter behind a
	// ParentBased sampler (rampart makes its own 1% head decision and marks
	// the spans it exports as sampled), and a Prometheus metric reader.
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(otlpURL+"/v1/traces"))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sampling.DefaultRatio))),
		sdktrace.WithBatcher(exporter))
	defer tp.Shutdown(ctx)
	promExporter, err := otelprom.New(otelprom.WithRegisterer(registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExporter))
	defer mp.Shutdown(ctx)

	// rampart's tracer on that SDK: 1% of successful calls, every errored
	// call. The preset records its breakers' transitions through the same
	// metrics.
	tracer := sampling.NewTracer(sampling.WithTracerProvider(tp), sampling.WithMeterProvider(mp))
	breakers := breaker.NewGroup(breaker.Settings{}, 0)

	// A two-partition cluster and its topology.
	m := &topology.Map{Epoch: 1, PartitionCount: 2, Partitions: []topology.Partition{
		{Index: 0, Primary: "127.0.15.1", Replicas: []string{"127.0.15.2"}, HashStart: 0x00000000, HashEnd: 0x7fffffff},
		{Index: 1, Primary: "127.0.15.3", Replicas: []string{"127.0.15.4"}, HashStart: 0x80000000, HashEnd: 0xffffffff},
	}}
	// Nodes report to the master every 50ms; one silent for 1s is dead.
	cluster, err := clustertest.Start(m, clustertest.WithHeartbeat(50*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	// Last, once everything that used it is closed: Close reports requests
	// still in flight, which would mean a leak.
	defer func() { err = errors.Join(err, cluster.Close()) }()
	watcher := topology.NewWatcher(topology.Static(m))
	watchCtx, stopWatcher := context.WithCancel(ctx)
	watcherDone := make(chan struct{})
	go func() { defer close(watcherDone); _ = watcher.Run(watchCtx) }()
	defer func() { stopWatcher(); <-watcherDone }()
	waitCtx, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWait()
	if _, err := watcher.Wait(waitCtx); err != nil {
		return err
	}

	// The client: the preset with tracing and the shared breakers.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: httpmw.New(base,
		httpmw.WithService(httpmw.Service{Host: "orders", Topology: watcher, Port: cluster.HTTPPort()}),
		httpmw.WithBreakers(breakers),
		httpmw.WithTracer(tracer),
		httpmw.WithRetry(&retry.Policy{BaseDelay: 5 * time.Millisecond}),
	)}

	// 100 reads before the fault, 100 after, then 5 writes to partition 0.
	var calls, failed int
	call := func(method, key string) {
		calls++
		if err := do(client, method, key); err != nil {
			failed++
		}
	}
	for i := range 100 {
		call(http.MethodGet, fmt.Sprintf("customer-%d", i%20))
	}
	primary := m.Partitions[0].Primary
	cluster.Node(primary).SetErrorRate(1)
	fmt.Printf("fault: %s, the primary of partition 0, answers every request with 503\n", primary)
	for i := range 100 {
		call(http.MethodGet, fmt.Sprintf("customer-%d", i%20))
	}
	key0 := "customer-1" // a key of partition 0
	if m.Lookup(key0).Index != 0 {
		return errors.New("customer-1 is not in partition 0")
	}
	for range 5 {
		call(http.MethodPut, key0)
	}
	fmt.Printf("calls: %d, failed: %d\n", calls, failed)

	// Metrics, as Prometheus scrapes them.
	lines, err := scrape(&http.Client{Transport: base}, metricsURL+"/metrics", "rampart_breaker_state", "rampart_retries", "rampart_failovers")
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Println(l)
	}

	// Spans, as the OTLP receiver got them.
	if err := tp.ForceFlush(ctx); err != nil {
		return err
	}
	r := receiver.snapshot()
	fmt.Printf("spans exported for failed calls: %d (%d of %d calls)\n", r.failedSpans, r.failedCalls, failed)
	fmt.Printf("spans exported for calls that succeeded after a retry: %d (%d calls)\n", r.recoveredSpans, r.recoveredCalls)
	fmt.Printf("spans exported for clean calls: %d (%d of %d calls, head-sampled at 1%%)\n",
		r.cleanSpans, r.cleanCalls, calls-failed-r.recoveredCalls)
	everyError := failed > 0 && r.failedCalls == failed && r.recoveredCalls > 0
	fmt.Printf("every call that saw an error was exported: %t\n", everyError)
	if !everyError {
		return errors.New("errored calls missing from the export")
	}
	return nil
}

// do sends one request for key and returns an error unless it got a 200.
func do(client *http.Client, method, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(httpmw.WithPartitionKey(ctx, key), method, "http://orders/orders/"+key, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// scrape GETs a Prometheus text page and returns its sample lines whose
// metric name starts with one of prefixes.
func scrape(client *http.Client, url string, prefixes ...string) ([]string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, p := range prefixes {
			if strings.HasPrefix(sc.Text(), p) {
				lines = append(lines, sc.Text())
			}
		}
	}
	return lines, sc.Err()
}

// serve serves h on a loopback port and returns its base URL and a stop
// function.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// spanCounter is a minimal OTLP/HTTP trace receiver: it decodes each export
// request and counts the spans of each trace. rampart's logical-call span
// carries the rampart.attempts attribute; its status says whether the call
// saw an error, and rampart.outcome whether it ended well.
type spanCounter struct {
	mu     sync.Mutex
	traces map[string]*traceSpans // by trace ID
}

type traceSpans struct {
	spans int
	call  *tracepb.Span // the logical-call span, once received
}

// counts are the spans and calls received, by what the call did.
type counts struct {
	failedSpans, failedCalls       int // calls that returned an error
	recoveredSpans, recoveredCalls int // calls that succeeded after a failed attempt
	cleanSpans, cleanCalls         int // calls without an error
}

func (s *spanCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, 8<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer gz.Close()
		body = gz
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if s.traces == nil {
		s.traces = make(map[string]*traceSpans)
	}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				t := s.traces[string(sp.GetTraceId())]
				if t == nil {
					t = &traceSpans{}
					s.traces[string(sp.GetTraceId())] = t
				}
				t.spans++
				if attr(sp, string(sampling.AttrAttempts)) != nil {
					t.call = sp
				}
			}
		}
	}
	s.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// snapshot sorts the traces received so far by what their call did.
func (s *spanCounter) snapshot() counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c counts
	for _, t := range s.traces {
		if t.call == nil {
			continue
		}
		outcome := attr(t.call, string(sampling.AttrOutcome)).GetStringValue()
		switch {
		case t.call.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR:
			c.cleanSpans += t.spans
			c.cleanCalls++
		case outcome == sampling.Success.String():
			c.recoveredSpans += t.spans
			c.recoveredCalls++
		default:
			c.failedSpans += t.spans
			c.failedCalls++
		}
	}
	return c
}

// attr returns the value of the span's attribute key, or nil.
func attr(sp *tracepb.Span, key string) *commonpb.AnyValue {
	for _, kv := range sp.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}
