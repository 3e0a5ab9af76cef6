package topology_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-go/rampart/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stepClock lets a test decide when each poll after the first happens:
// every wait of the watcher shows up on waits, and fires when the test sends
// on it.
type stepClock struct{ waits chan chan time.Time }

func newStepClock() *stepClock { return &stepClock{waits: make(chan chan time.Time, 16)} }

func (c *stepClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- ch
	return ch
}

// next waits until the watcher has finished a poll and is waiting for the
// next; it returns the function that fires that wait.
func (c *stepClock) next(t *testing.T) (fire func()) {
	t.Helper()
	select {
	case ch := <-c.waits:
		return func() { ch <- time.Now() }
	case <-time.After(10 * time.Second):
		t.Fatal("watcher never waited for its next poll")
		return nil
	}
}

// mapJSON returns a valid three-partition map with the given epoch.
func mapJSON(t *testing.T, epoch int64) []byte {
	t.Helper()
	m := &topology.Map{Epoch: epoch, MasterNodeID: "m", PartitionCount: 3, Partitions: []topology.Partition{
		{Index: 0, Primary: "127.0.1.5", Replicas: []string{"127.0.1.6"}, HashStart: 0, HashEnd: 0x55555555},
		{Index: 1, Primary: "127.0.2.5", HashStart: 0x55555556, HashEnd: 0xaaaaaaaa},
		{Index: 2, Primary: "127.0.3.5", HashStart: 0xaaaaaaab, HashEnd: 0xffffffff},
	}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sequenceServer serves payloads in order, one per request, then the last
// one again; each with ETag "v<i>", honoring If-None-Match.
type sequenceServer struct {
	*httptest.Server
	mu          sync.Mutex
	payloads    [][]byte
	n           int
	ifNoneMatch []string
}

func newSequenceServer(t *testing.T, payloads ...[]byte) *sequenceServer {
	s := &sequenceServer{payloads: payloads}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/cluster/topology" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		i := min(s.n, len(s.payloads)-1)
		s.n++
		s.ifNoneMatch = append(s.ifNoneMatch, r.Header.Get("If-None-Match"))
		s.mu.Unlock()
		etag := fmt.Sprintf(`"v%d"`, i)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.payloads[i])
	}))
	t.Cleanup(s.Close)
	return s
}

// runWatcher starts w.Run and stops it at cleanup, checking that Run
// returns.
func runWatcher(t *testing.T, w *topology.Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func epochOf(m *topology.Map) int64 {
	if m == nil {
		return -1
	}
	return m.Epoch
}

// TestWatcherHTTPSequence: epoch 5, a malformed payload, epoch 4, epoch 6,
// from a real server; the watcher serves 5, 5, 5, 6 and reports two
// rejections.
func TestWatcherHTTPSequence(t *testing.T) {
	srv := newSequenceServer(t, mapJSON(t, 5), []byte(`{"clusterEpoch": 7, "partitions": [`), mapJSON(t, 4), mapJSON(t, 6))
	var rejected []error // written on the watcher goroutine before each wait
	var updates []int64
	clk := newStepClock()
	w := topology.NewWatcher(
		topology.HTTP(srv.URL+"/v1/cluster/topology", topology.WithHTTPClient(srv.Client())),
		topology.WithClock(clk),
		topology.OnReject(func(err error) { rejected = append(rejected, err) }),
		topology.OnFetchError(func(err error) { t.Errorf("fetch error: %v", err) }),
	)
	w.Subscribe(func(m *topology.Map) { updates = append(updates, m.Epoch) })
	stop := runWatcher(t, w)

	want := []struct {
		epoch      int64
		rejections uint64
	}{{5, 0}, {5, 1}, {5, 2}, {6, 2}}
	for i, step := range want {
		fire := clk.next(t)
		if got := epochOf(w.Current()); got != step.epoch {
			t.Errorf("after payload %d: epoch %d, want %d", i, got, step.epoch)
		}
		if got := w.Rejections(); got != step.rejections || uint64(len(rejected)) != step.rejections {
			t.Errorf("after payload %d: %d rejections (%d reported), want %d", i, got, len(rejected), step.rejections)
		}
		if i < len(want)-1 {
			fire()
		}
	}
	stop()
	if len(rejected) == 2 {
		if !errors.Is(rejected[0], topology.ErrInvalid) || !strings.Contains(rejected[0].Error(), "not JSON") {
			t.Errorf("first rejection = %v, want a not-JSON ErrInvalid", rejected[0])
		}
		if !errors.Is(rejected[1], topology.ErrStaleEpoch) || !strings.Contains(rejected[1].Error(), "epoch 4") {
			t.Errorf("second rejection = %v, want ErrStaleEpoch", rejected[1])
		}
	}
	if w.Updates() != 2 || fmt.Sprint(updates) != "[5 6]" {
		t.Errorf("Updates() = %d, subscriber saw %v; want 2, [5 6]", w.Updates(), updates)
	}
	if w.FetchErrors() != 0 {
		t.Errorf("FetchErrors() = %d", w.FetchErrors())
	}
	// The server saw each ETag of a map the source returned.
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if got := fmt.Sprint(srv.ifNoneMatch); got != `[ "v0" "v0" "v2"]` {
		t.Errorf("If-None-Match sent: %s", got)
	}
}

// fakeSource yields the results in order, then the last one again.
type fakeSource struct {
	mu      sync.Mutex
	results []func() (*topology.Map, error)
	n       int
}

func (s *fakeSource) Fetch(ctx context.Context) (*topology.Map, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.n, len(s.results)-1)
	s.n++
	return s.results[i]()
}

func TestWatcherFakeSource(t *testing.T) {
	parsed := func(epoch int64) func() (*topology.Map, error) {
		m, err := topology.Parse(mapJSON(t, epoch))
		return func() (*topology.Map, error) { return m, err }
	}
	bad := func() (*topology.Map, error) { return topology.Parse([]byte("nope")) }
	down := func() (*topology.Map, error) { return nil, errors.New("connection refused") }
	same := func() (*topology.Map, error) { return nil, nil }
	src := &fakeSource{results: []func() (*topology.Map, error){
		down, parsed(5), bad, parsed(4), same, parsed(5), parsed(6)}}
	var fetchErrs atomic.Int64
	clk := newStepClock()
	w := topology.NewWatcher(src, topology.WithClock(clk),
		topology.OnFetchError(func(error) { fetchErrs.Add(1) }), nil)
	runWatcher(t, w)
	for i, want := range []int64{-1, 5, 5, 5, 5, 5, 6} {
		fire := clk.next(t)
		if got := epochOf(w.Current()); got != want {
			t.Errorf("after result %d: epoch %d, want %d", i, got, want)
		}
		fire()
	}
	clk.next(t)
	if w.Rejections() != 2 || w.Updates() != 2 || w.FetchErrors() != 1 || fetchErrs.Load() != 1 {
		t.Errorf("rejections %d, updates %d, fetch errors %d/%d; want 2, 2, 1",
			w.Rejections(), w.Updates(), w.FetchErrors(), fetchErrs.Load())
	}
}

func TestWatcherWaitAndRunTwice(t *testing.T) {
	m, err := topology.Parse(mapJSON(t, 9))
	if err != nil {
		t.Fatal(err)
	}
	clk := newStepClock()
	w := topology.NewWatcher(topology.Static(m), topology.WithClock(clk))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := w.Wait(ctx); got != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait before Run = %v, %v", got, err)
	}
	runWatcher(t, w)
	got, err := w.Wait(context.Background())
	if err != nil || got != m {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	clk.next(t)
	if err := w.Run(context.Background()); !errors.Is(err, topology.ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

func TestWatcherRunEndsAtOnceWhenContextDone(t *testing.T) {
	w := topology.NewWatcher(&fakeSource{results: []func() (*topology.Map, error){
		func() (*topology.Map, error) { return nil, nil }}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}

func TestStaticInvalid(t *testing.T) {
	src := topology.Static(&topology.Map{Epoch: 1})
	if _, err := src.Fetch(context.Background()); !errors.Is(err, topology.ErrInvalid) {
		t.Errorf("Fetch = %v, want ErrInvalid", err)
	}
}

func TestHTTPAuthTLSAndStatus(t *testing.T) {
	payload := mapJSON(t, 3)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write(payload)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-cert case logs a handshake error
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tlsCfg := &tls.Config{RootCAs: pool}

	src := topology.HTTP(srv.URL, topology.WithTLSConfig(tlsCfg), topology.WithHeader("Authorization", "Bearer s3cret"))
	m, err := src.Fetch(context.Background())
	if err != nil || m.Epoch != 3 {
		t.Fatalf("Fetch = %v, %v", m, err)
	}

	noAuth := topology.HTTP(srv.URL, topology.WithTLSConfig(tlsCfg))
	_, err = noAuth.Fetch(context.Background())
	if err == nil || errors.Is(err, topology.ErrInvalid) || !strings.Contains(err.Error(), "401") {
		t.Errorf("Fetch without auth = %v, want a 401 fetch error", err)
	}

	small := topology.HTTP(srv.URL, topology.WithTLSConfig(tlsCfg),
		topology.WithHeader("Authorization", "Bearer s3cret"), topology.WithMaxBytes(100))
	_, err = small.Fetch(context.Background())
	if !errors.Is(err, topology.ErrTooLarge) || !errors.Is(err, topology.ErrInvalid) {
		t.Errorf("Fetch over the cap = %v, want ErrTooLarge", err)
	}
	if strings.Contains(fmt.Sprint(err), "s3cret") {
		t.Errorf("error leaks the credential: %v", err)
	}

	untrusted := topology.HTTP(srv.URL)
	if _, err := untrusted.Fetch(context.Background()); err == nil || errors.Is(err, topology.ErrInvalid) {
		t.Errorf("Fetch with an untrusted cert = %v, want a fetch error", err)
	}
}

func TestHTTPServerDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	var reported atomic.Int64
	clk := newStepClock()
	w := topology.NewWatcher(topology.HTTP(url), topology.WithClock(clk),
		topology.OnFetchError(func(error) { reported.Add(1) }))
	runWatcher(t, w)
	clk.next(t)
	if w.FetchErrors() != 1 || reported.Load() != 1 || w.Rejections() != 0 || w.Current() != nil {
		t.Errorf("fetch errors %d/%d, rejections %d, current %v", w.FetchErrors(), reported.Load(), w.Rejections(), w.Current())
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.json")
	if err := os.WriteFile(path, mapJSON(t, 11), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := topology.File(path).Fetch(context.Background())
	if err != nil || m.Epoch != 11 {
		t.Fatalf("Fetch = %v, %v", m, err)
	}
	if err := os.WriteFile(path, []byte(`{"clusterEpoch": -1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.File(path).Fetch(context.Background()); !errors.Is(err, topology.ErrInvalid) {
		t.Errorf("bad file: %v", err)
	}
	if _, err := topology.File(filepath.Join(dir, "missing")).Fetch(context.Background()); err == nil || errors.Is(err, topology.ErrInvalid) {
		t.Errorf("missing file: %v, want a fetch error", err)
	}
}

// TestWatcherRealClock runs the real clock with a short jittered interval
// and waits, on events, for the second epoch.
func TestWatcherRealClock(t *testing.T) {
	srv := newSequenceServer(t, mapJSON(t, 1), mapJSON(t, 2))
	w := topology.NewWatcher(
		topology.HTTP(srv.URL+"/v1/cluster/topology", topology.WithHTTPClient(srv.Client())),
		topology.WithInterval(time.Millisecond), topology.WithJitter(0.5), topology.WithFetchTimeout(5*time.Second),
	)
	got := make(chan int64, 4)
	unsubscribe := w.Subscribe(func(m *topology.Map) { got <- m.Epoch })
	noop := w.Subscribe(nil)
	noop()
	runWatcher(t, w)
	for _, want := range []int64{1, 2} {
		select {
		case e := <-got:
			if e != want {
				t.Fatalf("subscriber saw epoch %d, want %d", e, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no update to epoch %d", want)
		}
	}
	unsubscribe()
	if w.Current().Epoch != 2 {
		t.Errorf("Current epoch %d", w.Current().Epoch)
	}
}

// TestSubscribersInOrder: subscribers are called in the order they
// subscribed, one after another.
func TestSubscribersInOrder(t *testing.T) {
	m, err := topology.Parse(mapJSON(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	w := topology.NewWatcher(topology.Static(m), topology.WithInterval(time.Hour))
	var got []int // written on the watcher goroutine, read after Wait
	done := make(chan struct{})
	for i := range 20 {
		w.Subscribe(func(*topology.Map) {
			got = append(got, i)
			if i == 19 {
				close(done)
			}
		})
	}
	runWatcher(t, w)
	<-done
	for i, v := range got {
		if v != i {
			t.Fatalf("subscribers called in the order %v", got)
		}
	}
}

// A subscriber cancelled while an earlier subscriber runs is not called
// for that map: once its cancel has returned, it is not called again.
func TestUnsubscribedNotCalled(t *testing.T) {
	m, err := topology.Parse(mapJSON(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	w := topology.NewWatcher(topology.Static(m), topology.WithInterval(time.Hour))
	inFirst := make(chan struct{})
	release := make(chan struct{})
	w.Subscribe(func(*topology.Map) {
		close(inFirst)
		<-release
	})
	var cancelled, calledAfter atomic.Bool
	cancel := w.Subscribe(func(*topology.Map) {
		if cancelled.Load() {
			calledAfter.Store(true)
		}
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	<-inFirst // the watcher is delivering the first map
	cancel()
	cancelled.Store(true)
	close(release)
	stop()
	<-done
	if calledAfter.Load() {
		t.Fatal("subscriber called after its cancel func returned")
	}
}
