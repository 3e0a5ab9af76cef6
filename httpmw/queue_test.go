package httpmw_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
)

// An attempt whose timeout ends its wait in its node's bulkhead queue never
// reached the node: the node's breaker counts nothing, and the error
// matches bulkhead.ErrFull and context.DeadlineExceeded.
func TestQueueTimeoutNotANodeFailure(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		entered <- struct{}{}
		<-release
	}))
	defer srv.Close()
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // before srv.Close, which waits for the held handler
	tr := srv.Client().Transport.(*http.Transport)
	defer tr.CloseIdleConnections()
	bg := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 2, Timeout: time.Hour}, 0)
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The holder takes the node's one slot and keeps it until released.
	holder := httpmw.New(tr, httpmw.WithRetry(fastRetry(1)), httpmw.WithBreakers(bg), httpmw.WithBulkheads(hg))
	held := make(chan error, 1)
	go func() {
		resp, err := holder.RoundTrip(mustGet(t, srv.URL))
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	<-entered

	rt := httpmw.New(tr, httpmw.WithBreakers(bg), httpmw.WithBulkheads(hg),
		httpmw.WithRetry(&retry.Policy{MaxAttempts: 1, AttemptTimeout: 20 * time.Millisecond}))
	for i := range 3 {
		resp, err := rt.RoundTrip(mustGet(t, srv.URL))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("call %d: sent although the only slot was held", i)
		}
		if !errors.Is(err, bulkhead.ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: err = %v, want bulkhead.ErrFull and context.DeadlineExceeded", i, err)
		}
	}
	node := srv.Listener.Addr().String()
	if st, c := bg.Get(node).State(), bg.Get(node).Counts(); st != breaker.StateClosed || c.TotalFailures != 0 {
		t.Errorf("node breaker %v with %d failures after queue timeouts, want closed with none", st, c.TotalFailures)
	}
	free()
	if err := <-held; err != nil {
		t.Fatalf("holder: %v", err)
	}
	if n := served.Load(); n != 1 {
		t.Errorf("server saw %d requests, want only the holder's", n)
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// A caller that gives up while its request waits in the bulkhead queue gets
// its own context's error, not a bulkhead refusal.
func TestQueueCallerCancelIsTheCallers(t *testing.T) {
	hg, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a request that never left the queue was sent")
	}))
	defer srv.Close()
	slot, err := hg.Get(srv.Listener.Addr().String()).Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	rt := httpmw.New(srv.Client().Transport, httpmw.WithBulkheads(hg), httpmw.WithRetry(fastRetry(3)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for hg.Get(srv.Listener.Addr().String()).Queued() == 0 {
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
		cancel() // once the request waits in the queue
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err = rt.RoundTrip(req)
	close(stop)
	<-stopped
	if !errors.Is(err, context.Canceled) || errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("err = %v, want context.Canceled and not bulkhead.ErrFull", err)
	}
}
