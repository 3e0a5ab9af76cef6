package httpmw_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/internal/metrictest"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

type mwKey struct{}

// callerMiddlewareChain is Tracing → the caller's own middleware mw →
// Retry → a recorder of each attempt's context → a real transport.
func callerMiddlewareChain(t *testing.T, mw func(*http.Request) *http.Request, pol *retry.Policy, seen func(*http.Request)) http.RoundTripper {
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	record := httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		seen(r)
		return transport.RoundTrip(r)
	})
	own := func(next http.RoundTripper) http.RoundTripper {
		return httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return next.RoundTrip(mw(r)) })
	}
	return httpmw.Chain(record, httpmw.TracingMiddleware(httpmw.WithTracer(sampling.NewTracer())), own,
		httpmw.RetryMiddleware(httpmw.WithRetry(pol)))
}

// TestCallerMiddlewareContextKept: a value the caller's own middleware adds
// between two rampart layers reaches every attempt, the retries included
// (they used to be built from the outer layer's context).
func TestCallerMiddlewareContextKept(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var mu sync.Mutex
	var values []any
	rt := callerMiddlewareChain(t, func(r *http.Request) *http.Request {
		return r.WithContext(context.WithValue(r.Context(), mwKey{}, "v"))
	}, fastRetry(3), func(r *http.Request) {
		mu.Lock()
		values = append(values, r.Context().Value(mwKey{}))
		mu.Unlock()
	})
	resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(values) != 2 || values[0] != "v" || values[1] != "v" {
		t.Errorf("the attempts saw %v, want the middleware's value in both", values)
	}
}

// TestCallerMiddlewareDeadline: a deadline the caller's own middleware sets
// between two rampart layers is the caller's: when it passes, the call ends
// with it and is not retried (it used to be taken for an attempt timeout).
func TestCallerMiddlewareDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	var attempts atomic.Int32
	pol := fastRetry(3)
	pol.AttemptTimeout = 10 * time.Second
	rt := callerMiddlewareChain(t, func(r *http.Request) *http.Request {
		ctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond)
		_ = cancel // released when the deadline passes
		return r.WithContext(ctx)
	}, pol, func(*http.Request) { attempts.Add(1) })
	resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the call outlived the middleware's deadline")
	}
	if !errors.Is(err, context.DeadlineExceeded) || attempts.Load() != 1 {
		t.Errorf("err %v after %d attempts; want the deadline after 1", err, attempts.Load())
	}
}

// TestBufferingBodyHonoursContext: a body that is buffered for replay and
// never ends does not hold the call past its context; the body is closed
// (net/http's own contract for a request's body).
func TestBufferingBodyHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	rt := httpmw.Chain(transport, httpmw.RetryMiddleware(httpmw.WithRetry(fastRetry(3))))
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL, pr)
	req.GetBody = nil
	done := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RoundTrip = %v, want the context's deadline", err)
		}
	case <-time.After(10 * time.Second):
		pw.Close()
		t.Fatal("RoundTrip still reading the body 10s after its context ended")
	}
	if _, err := pw.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("writing to the body after the call: %v, want it closed", err)
	}
}

// TestUpgradeWithAttemptTimeout: the body of a 101 Switching Protocols
// response stays an io.ReadWriteCloser through the retry layer's attempt
// timeout wrapper, so the caller can talk on the upgraded connection, and
// keeps net/http's CloseWrite, so the caller can half-close it (as
// httputil.ReverseProxy does) and still read what the server sends then.
func TestUpgradeWithAttemptTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw)          // echo until the client half-closes
		_, _ = conn.Write([]byte("|bye")) // then say goodbye
	}))
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	pol := fastRetry(3)
	pol.AttemptTimeout = time.Minute
	rt := httpmw.Chain(transport, httpmw.RetryMiddleware(httpmw.WithRetry(pol)))
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("status %d, body %T: want 101 and an io.ReadWriteCloser", resp.StatusCode, resp.Body)
	}
	if _, err := rwc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	cw, ok := resp.Body.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("body %T has no CloseWrite: the upgraded connection cannot be half-closed", resp.Body)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rwc); string(b) != "ping|bye" {
		t.Fatalf("read %q, %v; want the echo and the goodbye", b, err)
	}
}

// A deadline the caller's own middleware sets above the breaker is the
// caller's giving up, neutral for the breaker, also with Tracing above and
// no Retry layer: the caller's context is then the request's, not the
// call's parent, which never sees the middleware's deadline (the breaker
// counted a failure against a node merely slower than the caller wanted).
func TestMiddlewareDeadlineBreakerNeutral(t *testing.T) {
	srv := slowServer(t)
	u, _ := url.Parse(srv.URL)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, traced := range []bool{false, true} {
		bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, 0)
		var tracing httpmw.Middleware
		if traced {
			tracing = httpmw.TracingMiddleware(httpmw.WithTracer(sampling.NewTracer()))
		}
		rt := httpmw.Chain(tr, tracing, deadlineMiddleware, httpmw.BreakerMiddleware(httpmw.WithBreakers(bg)))
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("no deadline error")
		}
		if st := bg.Get(u.Host).State(); st != breaker.StateClosed {
			t.Errorf("with Tracing above: %v; the caller's middleware deadline (%v) opened the node's breaker (%v)", traced, err, st)
		}
	}
}

// A deadline the caller's own middleware sets below Tracing is the
// caller's giving up: the attempt it ends is canceled, not a node failure,
// with or without a Retry layer below the middleware (without one, Tracing
// ended the attempt by its own request's context, which never saw the
// deadline).
func TestMiddlewareDeadlineAttemptOutcome(t *testing.T) {
	srv := slowServer(t)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	for _, withRetry := range []bool{true, false} {
		rd := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		tr := sampling.NewTracer(sampling.WithRatio(0), sampling.WithMeterProvider(mp))
		var below httpmw.Middleware
		if withRetry {
			below = httpmw.RetryMiddleware(httpmw.WithRetry(&retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
		}
		rt := httpmw.Chain(base, httpmw.TracingMiddleware(httpmw.WithTracer(tr)), deadlineMiddleware, below)
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("no deadline error")
		}
		t.Logf("retry below: %v; rampart.attempts: %v", withRetry, metrictest.Points(t, rd, "rampart.attempts"))
		if n := metrictest.Total(t, rd, "rampart.attempts", metrictest.Has(sampling.AttrOutcome, "failure")); n > 0 {
			t.Errorf("retry below: %v; the middleware's deadline made %v attempt(s) a failure", withRetry, n)
		}
	}
}

// slowServer answers after 2s, or when its request's context ends.
func slowServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deadlineMiddleware is a caller's middleware that gives each request 30ms.
func deadlineMiddleware(next http.RoundTripper) http.RoundTripper {
	return httpmw.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Millisecond)
		defer cancel()
		return next.RoundTrip(r.WithContext(ctx))
	})
}
