package clustertest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/clustertest/discoverypb"
)

func TestHTTPFaults(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	hc := httpClient(t)
	n := c.Node("127.0.1.6")
	url := n.URL() + "/f"

	t.Run("error rate", func(t *testing.T) {
		defer n.Heal()
		n.SetErrorRate(1.0 / 3)
		var pattern []int
		for range 9 {
			status, _, _ := get(t, hc, url, nil)
			pattern = append(pattern, status)
		}
		for i, s := range pattern {
			want := http.StatusOK
			if (i+1)%3 == 0 {
				want = http.StatusServiceUnavailable
			}
			if s != want {
				t.Fatalf("statuses %v: every third should be 503", pattern)
			}
		}
	})

	t.Run("throttle", func(t *testing.T) {
		defer n.Heal()
		n.SetThrottle(1500 * time.Millisecond)
		status, _, h := get(t, hc, url, nil)
		if status != http.StatusTooManyRequests || h.Get("Retry-After") != "2" {
			t.Errorf("throttled: %d Retry-After %q", status, h.Get("Retry-After"))
		}
		n.Heal()
		if status, _, _ := get(t, hc, url, nil); status != http.StatusOK {
			t.Errorf("after Heal: %d", status)
		}
	})

	t.Run("latency", func(t *testing.T) {
		defer n.Heal()
		n.SetLatency(time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if _, err := hc.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("with an hour of latency: %v", err)
		}
		waitUntil(t, "the delayed request to end", func() bool { return n.InFlight() == 0 })
		n.SetLatency(time.Millisecond)
		if status, _, _ := get(t, hc, url, nil); status != http.StatusOK {
			t.Errorf("small latency: %d", status)
		}
	})

	t.Run("stall", func(t *testing.T) {
		defer n.Heal()
		n.Stall()
		done := make(chan int, 1)
		go func() {
			resp, err := hc.Get(url)
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		waitUntil(t, "the request to stall", func() bool { return n.InFlight() == 1 })
		select {
		case s := <-done:
			t.Fatalf("stalled request answered %d", s)
		default:
		}
		n.Heal() // releases it
		if s := <-done; s != http.StatusOK {
			t.Errorf("released request: %d", s)
		}
	})

	t.Run("crash and recover", func(t *testing.T) {
		n.Crash()
		n.Crash() // no-op
		if !n.Crashed() {
			t.Fatal("Crashed() = false")
		}
		_, err := hc.Get(url)
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Errorf("GET crashed node: %v, want a dial error", err)
		}
		if err := n.Recover(); err != nil {
			t.Fatal(err)
		}
		if err := n.Recover(); err != nil {
			t.Fatal(err)
		}
		if status, _, _ := get(t, hc, url, nil); status != http.StatusOK {
			t.Errorf("after Recover: %d", status)
		}
	})

	t.Run("crash cuts stalled request", func(t *testing.T) {
		defer n.Heal()
		n.Stall()
		errc := make(chan error, 1)
		go func() {
			resp, err := hc.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		waitUntil(t, "the request to stall", func() bool { return n.InFlight() == 1 })
		n.Crash()
		if err := <-errc; err == nil {
			t.Error("stalled request succeeded across a crash")
		}
		waitUntil(t, "the cut request to end", func() bool { return n.InFlight() == 0 })
		if err := n.Recover(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGRPCFaults(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	n := c.Node("127.0.3.5")
	conn := grpcConn(t, n.GRPCAddr())
	ec := discoverypb.NewEchoClient(conn)
	ctx := testCtx(t)
	echo := func(opts ...grpc.CallOption) error {
		_, err := ec.Echo(ctx, &discoverypb.EchoRequest{Payload: []byte("x")}, opts...)
		return err
	}

	t.Run("error rate", func(t *testing.T) {
		defer n.Heal()
		n.SetErrorRate(0.5)
		for i := 1; i <= 6; i++ {
			err := echo()
			if want := i%2 == 0; (status.Code(err) == codes.Unavailable) != want {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		n.SetErrorRate(1)
		if status.Code(echo()) != codes.Unavailable {
			t.Error("rate 1 did not fail")
		}
	})

	t.Run("throttle", func(t *testing.T) {
		defer n.Heal()
		n.SetThrottle(700 * time.Millisecond)
		var trailer metadata.MD
		err := echo(grpc.Trailer(&trailer))
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("throttled: %v", err)
		}
		if got := trailer.Get(clustertest.PushbackTrailer); len(got) != 1 || got[0] != "700" {
			t.Errorf("pushback trailer = %v", got)
		}
		stream, err := ec.Stream(ctx, &discoverypb.StreamRequest{Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("throttled stream: %v", err)
		}
		if got := stream.Trailer().Get(clustertest.PushbackTrailer); len(got) != 1 || got[0] != "700" {
			t.Errorf("stream pushback trailer = %v", got)
		}
	})

	t.Run("latency", func(t *testing.T) {
		defer n.Heal()
		n.SetLatency(time.Hour)
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := ec.Echo(cctx, &discoverypb.EchoRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("with an hour of latency: %v", err)
		}
		waitUntil(t, "the delayed call to end", func() bool { return n.InFlight() == 0 })
	})

	t.Run("stall", func(t *testing.T) {
		defer n.Heal()
		n.Stall()
		errc := make(chan error, 1)
		go func() { errc <- echo() }()
		waitUntil(t, "the call to stall", func() bool { return n.InFlight() == 1 })
		n.Heal()
		if err := <-errc; err != nil {
			t.Errorf("released call: %v", err)
		}
	})

	t.Run("stream interrupted after first message", func(t *testing.T) {
		defer n.Heal()
		n.InterruptStreams(1)
		stream, err := ec.Stream(ctx, &discoverypb.StreamRequest{Count: 5})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || r.GetSeq() != 0 {
			t.Fatalf("first message: %v, %v", r, err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("second Recv: %v, want Unavailable", err)
		}
	})

	t.Run("stream fails before first message", func(t *testing.T) {
		defer n.Heal()
		n.InterruptStreams(0)
		stream, err := ec.Stream(ctx, &discoverypb.StreamRequest{Count: 5})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("first Recv: %v, want Unavailable", err)
		}
		n.Heal()
		stream, err = ec.Stream(ctx, &discoverypb.StreamRequest{Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Errorf("after Heal: %v", err)
		}
	})

	t.Run("crash and recover", func(t *testing.T) {
		n.Crash()
		if status.Code(echo()) != codes.Unavailable {
			t.Error("call to crashed node did not fail with Unavailable")
		}
		if err := n.Recover(); err != nil {
			t.Fatal(err)
		}
		if err := echo(grpc.WaitForReady(true)); err != nil {
			t.Errorf("after Recover: %v", err)
		}
	})

	t.Run("traceparent metadata", func(t *testing.T) {
		n.ResetCounters()
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		if err := echo(); err != nil {
			t.Fatal(err)
		}
		if err := func() error {
			_, err := ec.Echo(metadata.AppendToOutgoingContext(ctx, "traceparent", tp), &discoverypb.EchoRequest{})
			return err
		}(); err != nil {
			t.Fatal(err)
		}
		if n.BadTraceparents() != 1 || n.LastTraceparent() != tp || n.Requests() != 2 {
			t.Errorf("BadTraceparents=%d LastTraceparent=%q Requests=%d", n.BadTraceparents(), n.LastTraceparent(), n.Requests())
		}
	})
}

func TestCloseReleasesStalledRequests(t *testing.T) {
	c, err := clustertest.Start(threePartitions(t), fast)
	if err != nil {
		t.Fatal(err)
	}
	hc := httpClient(t)
	n := c.Node("127.0.1.5")
	n.Stall()
	c.Node("127.0.1.6").SetLatency(time.Hour)
	ec := discoverypb.NewEchoClient(grpcConn(t, n.GRPCAddr()))

	errc := make(chan error, 3)
	go func() {
		resp, err := hc.Get(n.URL() + "/stalled")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	go func() {
		resp, err := hc.Post(c.Node("127.0.1.6").URL()+"/slow", "text/plain", strings.NewReader("x"))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	go func() {
		_, err := ec.Echo(context.Background(), &discoverypb.EchoRequest{})
		errc <- err
	}()
	waitUntil(t, "three stalled requests", func() bool {
		return n.InFlight() == 2 && c.Node("127.0.1.6").InFlight() == 1
	})
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for range 3 {
		if err := <-errc; err == nil {
			t.Error("a stalled request succeeded")
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Recover(); !errors.Is(err, clustertest.ErrClosed) {
		t.Errorf("Recover after Close: %v", err)
	}
}

func TestCloseReportsStuckRequests(t *testing.T) {
	c, err := clustertest.Start(threePartitions(t), fast, clustertest.WithCloseTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Node("127.0.2.5")
	// A client that promises a body and never sends it keeps the handler
	// reading: no fault of ours, so Close cannot release it.
	conn, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /stuck HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the stuck request", func() bool { return n.InFlight() == 1 })
	err = c.Close()
	var stuck *clustertest.StuckError
	if !errors.Is(err, clustertest.ErrStuck) || !errors.As(err, &stuck) || stuck.InFlight["127.0.2.5"] != 1 || len(stuck.InFlight) != 1 {
		t.Fatalf("Close = %v, want a StuckError naming 127.0.2.5", err)
	}
	if !strings.Contains(err.Error(), "127.0.2.5 (1 in flight)") {
		t.Errorf("error text %q", err)
	}
	if n.InFlight() != 0 {
		t.Errorf("InFlight after the forced close = %d", n.InFlight())
	}
}

// A request delayed by a node's latency, or stalled on a node that also
// has one, completes at once when the node is healed (the stalled one
// waited out the latency Heal had removed, the delayed one its own).
func TestHealEndsLatency(t *testing.T) {
	for _, stall := range []bool{true, false} {
		c := clustertest.New(t, threePartitions(t), fast)
		hc := httpClient(t)
		n := c.Node("127.0.1.6")
		n.SetLatency(time.Hour)
		if stall {
			n.Stall()
		}
		done := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/x", nil)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = errors.New(resp.Status)
				}
			}
			done <- err
		}()
		waitUntil(t, "the request to arrive", func() bool { return n.InFlight() == 1 })
		n.Heal()
		err := <-done
		cancel()
		if err != nil {
			t.Fatalf("request (stalled %v) after Heal: %v; want 200 at once", stall, err)
		}
	}
}

// Every error of the package matches one of its sentinels, also Recover's
// when its address is taken (ErrNoPorts).
func TestRecoverErrorMatchesSentinel(t *testing.T) {
	c := clustertest.New(t, threePartitions(t), fast)
	n := c.Node("127.0.1.6")
	n.Crash()
	ln, err := net.Listen("tcp", n.HTTPAddr()) // someone else took the port
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = n.Recover()
	if err == nil {
		t.Fatal("Recover succeeded on a taken address")
	}
	for _, s := range []error{clustertest.ErrInvalidTopology, clustertest.ErrNoPorts, clustertest.ErrClosed, clustertest.ErrStuck} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("Recover = %v: matches none of the package's sentinel errors", err)
}
