package httpmw_test

// Guards for the memory a call hands out. A transport below rampart may keep
// the request it was sent (and its context, URL and header map) after
// RoundTrip returned and even after the response body was closed: net/http's
// HTTP/1 writeLoop is not joined by RoundTrip or Body.Close, and its dial
// goroutine keeps the request context's values (context.WithoutCancel in
// Transport.getConn) for a dial that outlives the request. The caller keeps
// resp.Request. So nothing rampart puts in a request it sends may ever be
// reused for another call: these tests fail if it is.

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-go/rampart/httpmw"
)

type callIDKey struct{}

// sentRequest is what a call's request said when it was sent.
type sentRequest struct {
	r           *http.Request
	path        string
	callID      string
	traceparent string
	ctxID       any
}

// retainer is a stub transport that keeps every request it is sent, with a
// copy of what the request said at the time, and answers 200 with a body.
type retainer struct {
	mu   sync.Mutex
	sent []sentRequest
}

func (t *retainer) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.sent = append(t.sent, snapshot(r))
	t.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
}

func snapshot(r *http.Request) sentRequest {
	return sentRequest{r: r, path: r.URL.Path, callID: r.Header.Get("X-Call"),
		traceparent: r.Header.Get("Traceparent"), ctxID: r.Context().Value(callIDKey{})}
}

// check reports a difference between what r says now and what s recorded.
func (s sentRequest) check(t *testing.T, what string) {
	t.Helper()
	now := snapshot(s.r)
	now.r = s.r
	if now != s {
		t.Errorf("%s changed after its call ended: was %+v, now %+v", what, s, now)
	}
}

// callReq is call i's request: its own path, header and context value.
func callReq(t *testing.T, base string, i int) *http.Request {
	t.Helper()
	id := strconv.Itoa(i)
	ctx := context.WithValue(t.Context(), callIDKey{}, id)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/item/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set(httpmw.DefaultPartitionHeader, "customer-42")
	r.Header.Set("X-Call", id)
	return r
}

// TestSentRequestsNeverReused: requests kept by the transport and by the
// caller (resp.Request) still say what they said when sent, after their
// bodies were closed and many later calls ran, traced or not.
func TestSentRequestsNeverReused(t *testing.T) {
	for _, traced := range []bool{true, false} {
		t.Run("traced="+strconv.FormatBool(traced), func(t *testing.T) {
			next := &retainer{}
			rt := rampartPreset(t, next, "127.0.0.1", 8080, 0, traced)
			const calls = 200
			var held []sentRequest
			for i := range calls {
				resp, err := rt.RoundTrip(callReq(t, "http://orders", i))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				_ = resp.Body.Close() // a second Close is harmless
				s := snapshot(resp.Request)
				if s.callID != strconv.Itoa(i) || s.ctxID != strconv.Itoa(i) || s.path != "/item/"+strconv.Itoa(i) {
					t.Fatalf("call %d: resp.Request says %+v", i, s)
				}
				held = append(held, s)
			}
			for i, s := range held {
				s.check(t, "resp.Request of call "+strconv.Itoa(i))
			}
			next.mu.Lock()
			defer next.mu.Unlock()
			if len(next.sent) != calls {
				t.Fatalf("transport saw %d requests, want %d", len(next.sent), calls)
			}
			for i, s := range next.sent {
				if traced && s.traceparent == "" {
					t.Errorf("request %d: no traceparent sent", i)
				}
				s.check(t, "request "+strconv.Itoa(i)+" kept by the transport")
			}
		})
	}
}

// loopbackPreset is the full preset over a real http.Transport to a
// loopback server that echoes the request's X-Call header and path.
func loopbackPreset(t *testing.T) http.RoundTripper {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("X-Call")+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return rampartPreset(t, tr, host, port, 0, true)
}

// TestConcurrentCallersKeepTheirRequests: concurrent callers over loopback
// hold resp.Request, close the body, run further calls, and then find their
// own URL, headers and context in it (run with -race).
func TestConcurrentCallersKeepTheirRequests(t *testing.T) {
	rt := loopbackPreset(t)
	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []sentRequest
			for j := range perWorker {
				i := w*perWorker + j
				resp, err := rt.RoundTrip(callReq(t, "http://orders", i))
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				id := strconv.Itoa(i)
				if want := id + " /item/" + id; string(b) != want {
					errs <- "call " + id + ": server saw " + string(b) + ", want " + want
				}
				held = append(held, snapshot(resp.Request))
			}
			for _, s := range held {
				now := snapshot(s.r)
				if now.path != s.path || now.callID != s.callID || now.ctxID != s.ctxID || now.traceparent != s.traceparent ||
					"/item/"+s.callID != s.path || s.ctxID != s.callID {
					errs <- "resp.Request changed after its call ended: " + s.path + " " + now.path + " " + now.callID
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestUnclosedBodiesDoNotBreakLaterCalls: a caller that never closes some
// bodies loses nothing but their connections; later calls are served
// correctly and the unclosed responses keep their own requests.
func TestUnclosedBodiesDoNotBreakLaterCalls(t *testing.T) {
	rt := loopbackPreset(t)
	var open []*http.Response
	t.Cleanup(func() { // release the connections for the leak check
		for _, r := range open {
			_ = r.Body.Close()
		}
	})
	for i := range 60 {
		resp, err := rt.RoundTrip(callReq(t, "http://orders", i))
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			open = append(open, resp) // neither read nor closed
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		id := strconv.Itoa(i)
		if want := id + " /item/" + id; string(b) != want {
			t.Fatalf("call %d: got %q, want %q", i, b, want)
		}
	}
	for k, resp := range open {
		id := strconv.Itoa(3 * k)
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != id+" /item/"+id {
			t.Errorf("unclosed call %s: read %q, %v", id, b, err)
		}
		if s := snapshot(resp.Request); s.callID != id || s.ctxID != id || s.path != "/item/"+id {
			t.Errorf("unclosed call %s: resp.Request says %+v", id, s)
		}
	}
}
