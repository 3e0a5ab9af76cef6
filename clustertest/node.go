package clustertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/clustertest/discoverypb"
)

// Headers, trailers and limits of the node application.
const (
	// HeaderBodySHA256 carries the hex SHA-256 of a request body. A node
	// verifies it against the body it received and counts mismatches.
	HeaderBodySHA256 = "X-Body-Sha256"
	// HeaderNode names the node that answered, on every HTTP response.
	HeaderNode = "X-Node"
	// PushbackTrailer is the gRPC trailer of a throttled call: the delay in
	// milliseconds before the client may try again.
	PushbackTrailer = "grpc-retry-pushback-ms"
	// MaxBodyBytes caps the request bodies a node reads; larger ones get 413.
	MaxBodyBytes = 8 << 20
	// MaxStreamCount caps the replies of one Echo.Stream call.
	MaxStreamCount = 10000
)

// BodySHA256 returns the value of HeaderBodySHA256 (or EchoRequest.sha256)
// for body: its SHA-256 in lower-case hex.
func BodySHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Node is one member of a Cluster: an HTTP server and a gRPC server on the
// same loopback IP, with the cluster's ports, and a heartbeat loop that
// reports to the master.
//
// HTTP: every path answers. A request is first counted, its traceparent
// checked and its body read and checked against HeaderBodySHA256 (when the
// header is set; without it the body is not checked); then the node's faults
// apply; then it answers 400 if the checksum did not match, else 200 with
// "node=<ip> path=<path>" followed by " size=<n>" when the request had a
// body or a checksum header.
//
// gRPC: the Echo service of package discoverypb, with the same counting,
// traceparent check and faults in front of it.
//
// Faults are set at run time and may be combined; they apply to each request
// in this order: Stall, SetLatency, SetThrottle, SetErrorRate. All methods are
// safe for concurrent use.
type Node struct {
	ip       string
	httpAddr string
	grpcAddr string
	c        *Cluster

	requests   atomic.Int64
	mismatches atomic.Int64
	badTP      atomic.Int64
	heartbeats atomic.Int64
	lastTP     atomic.Pointer[string]
	inflight   tracker

	hbPoke chan struct{}
	hbConn *grpc.ClientConn

	// lifeMu serialises Crash, Recover and Close; handlers never take it.
	lifeMu sync.Mutex
	closed bool // under lifeMu

	mu          sync.Mutex // guards what follows; held only briefly
	cur         *life      // nil while crashed or closed
	stall       chan struct{}
	healed      chan struct{} // closed by Heal (then replaced): ends latency waits
	latency     time.Duration
	errRate     float64
	errSeq      int64
	throttle    bool
	retryAfter  time.Duration
	streamBreak int // -1: off
}

// life is one run of a node's servers, from start or Recover to Crash or
// Close. Its context is cancelled when the run ends, releasing stalled and
// delayed requests.
type life struct {
	ctx      context.Context
	cancel   context.CancelFunc
	httpSrv  *http.Server
	grpcSrv  *grpc.Server
	serveWG  sync.WaitGroup
	lnH, lnG net.Listener
}

// IP returns the node's IP, its identity in the topology map.
func (n *Node) IP() string { return n.ip }

// HTTPAddr returns the host:port of the node's HTTP server.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// GRPCAddr returns the host:port of the node's gRPC server.
func (n *Node) GRPCAddr() string { return n.grpcAddr }

// URL returns the base URL of the node's HTTP server, "http://ip:port".
func (n *Node) URL() string { return "http://" + n.httpAddr }

// Requests returns how many HTTP requests and gRPC calls reached the node,
// faulted ones included.
func (n *Node) Requests() int64 { return n.requests.Load() }

// InFlight returns how many requests the node is handling now.
func (n *Node) InFlight() int64 { return n.inflight.count() }

// BodyMismatches returns how many request bodies did not match their
// HeaderBodySHA256 header (or EchoRequest.sha256 field).
func (n *Node) BodyMismatches() int64 { return n.mismatches.Load() }

// BadTraceparents returns how many requests came with a traceparent header
// (metadata key for gRPC) that was missing or not valid W3C trace context.
func (n *Node) BadTraceparents() int64 { return n.badTP.Load() }

// LastTraceparent returns the traceparent of the last request that had one,
// valid or not, or "".
func (n *Node) LastTraceparent() string {
	if p := n.lastTP.Load(); p != nil {
		return *p
	}
	return ""
}

// Heartbeats returns how many heartbeats the master has acknowledged.
func (n *Node) Heartbeats() int64 { return n.heartbeats.Load() }

// ResetCounters sets Requests, BodyMismatches and BadTraceparents to zero and
// forgets the last traceparent.
func (n *Node) ResetCounters() {
	n.requests.Store(0)
	n.mismatches.Store(0)
	n.badTP.Store(0)
	n.lastTP.Store(nil)
}

// Crashed reports whether the node is crashed.
func (n *Node) Crashed() bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	return n.running() == nil && !n.closed
}

func (n *Node) running() *life {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

func (n *Node) setRunning(l *life) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cur = l
}

// Crash stops the node as if its process died: its listeners and every open
// connection are closed, requests in progress are cut off, and it stops
// sending heartbeats, so the master finds it dead after the heartbeat
// timeout. Crash returns once the node refuses connections. Crashing a
// crashed node does nothing.
func (n *Node) Crash() {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	l := n.running()
	if l == nil {
		return
	}
	n.setRunning(nil)
	l.cancel()
	_ = l.httpSrv.Close()
	l.grpcSrv.Stop()
	l.serveWG.Wait()
}

// Recover restarts a crashed node on the same addresses and ports and
// resumes heartbeats; the master then lets it rejoin as a replica. Faults
// other than the crash are kept. Recover on a running node does nothing;
// after Close it returns ErrClosed. It fails if an address cannot be bound
// again.
func (n *Node) Recover() error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.running() != nil {
		return nil
	}
	lnH, err := net.Listen("tcp", n.httpAddr)
	if err != nil {
		return fmt.Errorf("%w: recover %s: %w", ErrNoPorts, n.ip, err)
	}
	lnG, err := net.Listen("tcp", n.grpcAddr)
	if err != nil {
		_ = lnH.Close()
		return fmt.Errorf("%w: recover %s: %w", ErrNoPorts, n.ip, err)
	}
	n.setRunning(n.startLife(lnH, lnG))
	select {
	case n.hbPoke <- struct{}{}:
	default:
	}
	return nil
}

// Stall makes the node accept requests and never answer them: each waits
// until its client gives up, the node crashes, Heal releases it (it then
// completes normally), or the cluster closes.
func (n *Node) Stall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stall == nil {
		n.stall = make(chan struct{})
	}
}

// SetLatency delays every request by d before it is answered; 0 removes the
// delay. The delay ends early if the client gives up or the node crashes.
func (n *Node) SetLatency(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.latency = max(d, 0)
}

// SetErrorRate makes a fraction p in [0, 1] of requests fail with HTTP 503 or
// gRPC Unavailable. The failures are deterministic and evenly spread: the
// n-th request after the call (counting from 1) fails when floor(n*p) >
// floor((n-1)*p), so p = 1/k fails every k-th request and p = 1 fails all.
// p <= 0 removes the fault.
func (n *Node) SetErrorRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.errRate = min(max(p, 0), 1)
	n.errSeq = 0
}

// SetThrottle makes every request fail with HTTP 429 and a Retry-After
// header of retryAfter rounded up to whole seconds, or gRPC
// RESOURCE_EXHAUSTED with the PushbackTrailer set to retryAfter in
// milliseconds. Heal removes it.
func (n *Node) SetThrottle(retryAfter time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.throttle, n.retryAfter = true, max(retryAfter, 0)
}

// InterruptStreams makes every Echo.Stream call fail with gRPC Unavailable
// after sending at most after replies; 0 fails streams before their first
// reply. A negative value removes the fault, as does Heal.
func (n *Node) InterruptStreams(after int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.streamBreak = max(after, -1)
}

// Heal removes every fault but a crash (use Recover for that) and lets
// stalled and delayed requests complete at once.
func (n *Node) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stall != nil {
		close(n.stall)
		n.stall = nil
	}
	if n.healed != nil {
		close(n.healed)
		n.healed = nil // the next delayed request makes a new one
	}
	n.latency, n.errRate, n.errSeq = 0, 0, 0
	n.throttle, n.retryAfter = false, 0
	n.streamBreak = -1
}

// verdict is the outcome of a request's faults.
type verdict int

const (
	pass verdict = iota
	failThrottle
	failError
	failAbort // the node crashed or closed while the request waited
)

// admit applies the faults to one request of life l; it blocks while the
// node stalls or delays.
func (n *Node) admit(ctx context.Context, l *life) (verdict, time.Duration) {
	n.mu.Lock()
	stall := n.stall
	n.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return failAbort, 0
		case <-l.ctx.Done():
			return failAbort, 0
		}
	}
	// Read after the stall: the Heal that ended it removed the latency.
	n.mu.Lock()
	latency := n.latency
	if latency > 0 && n.healed == nil {
		n.healed = make(chan struct{})
	}
	healed := n.healed
	n.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-healed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return failAbort, 0
		case <-l.ctx.Done():
			t.Stop()
			return failAbort, 0
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.throttle {
		return failThrottle, n.retryAfter
	}
	if n.errRate > 0 {
		n.errSeq++
		const eps = 1e-9
		k := float64(n.errSeq)
		if math.Floor(k*n.errRate+eps) > math.Floor((k-1)*n.errRate+eps) {
			return failError, 0
		}
	}
	return pass, 0
}

func (n *Node) streamBreakAt() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.streamBreak
}

func (n *Node) noteTraceparent(values []string) {
	if len(values) == 0 {
		n.badTP.Add(1)
		return
	}
	v := values[0]
	n.lastTP.Store(&v)
	if len(values) != 1 || !ValidTraceparent(v) {
		n.badTP.Add(1)
	}
}

// startLife serves on the listeners.
func (n *Node) startLife(lnH, lnG net.Listener) *life {
	ctx, cancel := context.WithCancel(context.Background())
	l := &life{ctx: ctx, cancel: cancel, lnH: lnH, lnG: lnG}
	l.httpSrv = &http.Server{Handler: n.httpHandler(l), ErrorLog: discardLog}
	l.grpcSrv = grpc.NewServer(
		grpc.ChainUnaryInterceptor(n.unaryInterceptor(l)),
		grpc.ChainStreamInterceptor(n.streamInterceptor(l)),
	)
	discoverypb.RegisterEchoServer(l.grpcSrv, echoServer{n: n})
	l.serveWG.Go(func() { _ = l.httpSrv.Serve(lnH) })
	l.serveWG.Go(func() { _ = l.grpcSrv.Serve(lnG) })
	return l
}

// beginStop ends the life: it releases requests waiting on faults, closes
// the listeners and idle connections, and lets requests in progress
// complete. The returned func closes every connection by force and returns
// once the servers are done; it is called at the latest when ctx is done.
func (l *life) beginStop(ctx context.Context) (force func()) {
	l.cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.httpSrv.Shutdown(ctx) })
	grpcDone := make(chan struct{})
	go func() {
		l.grpcSrv.GracefulStop()
		close(grpcDone)
	}()
	return func() {
		_ = l.httpSrv.Close()
		l.grpcSrv.Stop()
		<-grpcDone
		wg.Wait()
		l.serveWG.Wait()
	}
}

func (n *Node) httpHandler(l *life) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.inflight.add()
		defer n.inflight.done()
		n.requests.Add(1)
		n.noteTraceparent(r.Header.Values("traceparent"))
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			return // the client went away
		}
		w.Header().Set(HeaderNode, n.ip)
		if len(body) > MaxBodyBytes {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		want := r.Header.Get(HeaderBodySHA256)
		mismatch := want != "" && want != BodySHA256(body)
		if mismatch {
			n.mismatches.Add(1)
		}
		v, retryAfter := n.admit(r.Context(), l)
		switch v {
		case failAbort:
			panic(http.ErrAbortHandler) // cut the connection, answer nothing
		case failThrottle:
			secs := int64(math.Ceil(retryAfter.Seconds()))
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			http.Error(w, "throttled", http.StatusTooManyRequests)
			return
		case failError:
			http.Error(w, "injected error", http.StatusServiceUnavailable)
			return
		}
		if mismatch {
			http.Error(w, "body checksum mismatch", http.StatusBadRequest)
			return
		}
		msg := "node=" + n.ip + " path=" + r.URL.Path
		if len(body) > 0 || want != "" {
			msg += " size=" + strconv.Itoa(len(body))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
		_, _ = io.WriteString(w, msg)
	}
}

// grpcAdmit runs the shared part of both interceptors and returns the
// error to fail the call with, or nil.
func (n *Node) grpcAdmit(ctx context.Context, l *life, setTrailer func(metadata.MD) error) error {
	n.requests.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	n.noteTraceparent(md.Get("traceparent"))
	v, retryAfter := n.admit(ctx, l)
	switch v {
	case failAbort:
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Error(codes.Unavailable, "clustertest: node "+n.ip+" went down")
	case failThrottle:
		_ = setTrailer(metadata.Pairs(PushbackTrailer, strconv.FormatInt(retryAfter.Milliseconds(), 10)))
		return status.Error(codes.ResourceExhausted, "clustertest: throttled")
	case failError:
		return status.Error(codes.Unavailable, "clustertest: injected error")
	}
	return nil
}

func (n *Node) unaryInterceptor(l *life) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n.inflight.add()
		defer n.inflight.done()
		err := n.grpcAdmit(ctx, l, func(md metadata.MD) error { return grpc.SetTrailer(ctx, md) })
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

func (n *Node) streamInterceptor(l *life) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		n.inflight.add()
		defer n.inflight.done()
		err := n.grpcAdmit(ss.Context(), l, func(md metadata.MD) error { ss.SetTrailer(md); return nil })
		if err != nil {
			return err
		}
		// The handler's context also ends when the node goes down, with
		// errNodeDown as its cause.
		ctx, cancel := context.WithCancelCause(ss.Context())
		defer cancel(nil)
		stop := context.AfterFunc(l.ctx, func() { cancel(errNodeDown) })
		defer stop()
		return h(srv, ctxStream{ServerStream: ss, ctx: ctx})
	}
}

// ctxStream replaces a stream's context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

// echoServer implements the Echo test service on a node.
type echoServer struct {
	discoverypb.UnimplementedEchoServer
	n *Node
}

// Echo checks the payload against req.Sha256 when set (InvalidArgument and a
// counted mismatch if it differs) and names the node and the payload size.
func (s echoServer) Echo(_ context.Context, req *discoverypb.EchoRequest) (*discoverypb.EchoReply, error) {
	if want := req.GetSha256(); want != "" && want != BodySHA256(req.GetPayload()) {
		s.n.mismatches.Add(1)
		return nil, status.Error(codes.InvalidArgument, "clustertest: payload checksum mismatch")
	}
	return &discoverypb.EchoReply{Node: s.n.ip, Size: int64(len(req.GetPayload()))}, nil
}

// Stream sends req.Count replies (at most MaxStreamCount) numbered from 0,
// unless InterruptStreams cuts it short.
func (s echoServer) Stream(req *discoverypb.StreamRequest, stream grpc.ServerStreamingServer[discoverypb.StreamReply]) error {
	count := min(max(int(req.GetCount()), 0), MaxStreamCount)
	brk := s.n.streamBreakAt()
	ctx := stream.Context()
	for i := 0; i < count; i++ {
		if brk >= 0 && i >= brk {
			break
		}
		if ctx.Err() != nil {
			if context.Cause(ctx) == errNodeDown {
				return status.Error(codes.Unavailable, "clustertest: node "+s.n.ip+" went down")
			}
			return status.FromContextError(ctx.Err()).Err()
		}
		if err := stream.Send(&discoverypb.StreamReply{Node: s.n.ip, Seq: int32(i)}); err != nil {
			return err
		}
	}
	if brk >= 0 {
		return status.Error(codes.Unavailable, "clustertest: stream interrupted")
	}
	return nil
}

// heartbeatLoop reports to the master every interval, and at once when
// poked, while the node is not crashed.
func (n *Node) heartbeatLoop(ctx context.Context) {
	client := discoverypb.NewClusterDiscoveryServiceClient(n.hbConn)
	t := time.NewTicker(n.c.cfg.interval)
	defer t.Stop()
	for {
		if n.running() != nil {
			n.beat(ctx, client)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.hbPoke:
		}
	}
}

func (n *Node) beat(ctx context.Context, client discoverypb.ClusterDiscoveryServiceClient) {
	ctx, cancel := context.WithTimeout(ctx, n.c.cfg.timeout)
	defer cancel()
	_, err := client.ReportHeartbeat(ctx, &discoverypb.HeartbeatRequest{
		NodeId:           n.ip,
		IpAddress:        n.ip,
		EpochTimestampMs: time.Now().UnixMilli(),
		ResourceStatus:   &discoverypb.ResourceUsage{ActiveConnections: n.InFlight()},
	})
	if err == nil {
		n.heartbeats.Add(1)
	}
}

// tracker counts requests in flight and lets Close wait for zero.
type tracker struct {
	mu      sync.Mutex
	n       int64
	waiters []chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		for _, w := range t.waiters {
			close(w)
		}
		t.waiters = nil
	}
}

func (t *tracker) count() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// idle returns a channel closed once nothing is in flight.
func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := make(chan struct{})
	if t.n == 0 {
		close(ch)
	} else {
		t.waiters = append(t.waiters, ch)
	}
	return ch
}

// ValidTraceparent reports whether v is a W3C traceparent header value, as
// every node checks on every request it serves (see Node.BadTraceparents):
// version, trace id, parent id and flags in lower-case hex, ids not all
// zero, version not ff, exactly 55 characters and no reserved flag bit for
// version 00. Tests of clients use it on what their own servers receive.
func ValidTraceparent(v string) bool {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	version, trace, parent, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(flags) {
		return false
	}
	if !lowerHex(trace) || allZero(trace) || !lowerHex(parent) || allZero(parent) {
		return false
	}
	if version == "00" {
		// Version 00 defines the sampled (01) and random (02) flags; peers
		// such as OpenTelemetry's W3C propagator reject the reserved bits.
		return len(v) == 55 && flags[0] == '0' && flags[1] <= '3'
	}
	return len(v) == 55 || v[55] == '-'
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// errNodeDown is the cause of a handler context ended by a crash or Close.
var errNodeDown = errors.New("clustertest: node went down")
