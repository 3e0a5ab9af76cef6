package bulkhead_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-go/rampart/bulkhead"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type result struct {
	p   bulkhead.Permit
	err error
}

// harness is one bulkhead on a fake clock plus the permits and background
// waiters a test case set up.
type harness struct {
	t    *testing.T
	b    *bulkhead.Bulkhead
	clk  *fakeClock
	held []bulkhead.Permit
	bg   []chan result
}

func newHarness(t *testing.T, cfg bulkhead.Config) *harness {
	t.Helper()
	clk := newFakeClock()
	b, err := bulkhead.New(cfg, bulkhead.WithClock(clk))
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return &harness{t: t, b: b, clk: clk}
}

// hold takes n slots.
func (h *harness) hold(n int) {
	h.t.Helper()
	for range n {
		p, ok := h.b.TryAcquire()
		if !ok {
			h.t.Fatalf("TryAcquire failed after %d held", len(h.held))
		}
		h.held = append(h.held, p)
	}
}

// start runs Acquire(ctx) in a goroutine and, when the bulkhead has a
// MaxWait, returns only once the call is queued (its timer started).
func (h *harness) start(ctx context.Context) chan result {
	h.t.Helper()
	ch := make(chan result, 1)
	go func() {
		p, err := h.b.Acquire(ctx)
		ch <- result{p, err}
	}()
	if h.b.Config().MaxWait > 0 {
		h.clk.WaitTimer(h.t)
	} else {
		waitQueued(h.t, h.b, h.b.Queued()+1)
	}
	return ch
}

// queue starts n background waiters with a background context.
func (h *harness) queue(n int) {
	h.t.Helper()
	for range n {
		h.bg = append(h.bg, h.start(context.Background()))
	}
}

// finish releases everything, lets every background waiter through, and
// checks that no slot leaked: nothing in flight, nothing queued, and the
// full capacity can be taken again.
func (h *harness) finish() {
	h.t.Helper()
	for _, p := range h.held {
		p.Release()
	}
	for _, ch := range h.bg {
		r := recv(h.t, ch)
		if r.err != nil {
			h.t.Errorf("background waiter: %v", r.err)
			continue
		}
		r.p.Release()
	}
	checkNoLeak(h.t, h.b)
}

func checkNoLeak(t *testing.T, b *bulkhead.Bulkhead) {
	t.Helper()
	if n := b.InFlight(); n != 0 {
		t.Errorf("InFlight = %d after everything was released, want 0", n)
	}
	if n := b.Queued(); n != 0 {
		t.Errorf("Queued = %d at the end, want 0", n)
	}
	limit := b.Config().MaxConcurrent
	var ps []bulkhead.Permit
	for i := range limit {
		p, ok := b.TryAcquire()
		if !ok {
			t.Errorf("only %d of %d slots could be taken: a slot leaked", i, limit)
			break
		}
		ps = append(ps, p)
	}
	if _, ok := b.TryAcquire(); ok {
		t.Errorf("took more than MaxConcurrent=%d slots", limit)
	}
	for _, p := range ps {
		p.Release()
	}
}

func recv(t *testing.T, ch chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not return")
		return result{}
	}
}

// waitQueued waits until b has n waiters (an event the test cannot observe
// otherwise when there is no MaxWait timer to announce it).
func waitQueued(t *testing.T, b *bulkhead.Bulkhead, n int) {
	t.Helper()
	for i := 0; b.Queued() < n; i++ {
		if i > 100000 {
			t.Fatalf("Queued = %d, want %d", b.Queued(), n)
		}
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     bulkhead.Config
		want    bulkhead.Config
		wantErr bool
	}{
		{"zero value gets defaults", bulkhead.Config{}, bulkhead.Config{MaxConcurrent: bulkhead.DefaultMaxConcurrent}, false},
		{"explicit values kept", bulkhead.Config{MaxConcurrent: 3, MaxQueue: 4, MaxWait: time.Second}, bulkhead.Config{MaxConcurrent: 3, MaxQueue: 4, MaxWait: time.Second}, false},
		{"negative MaxConcurrent", bulkhead.Config{MaxConcurrent: -1}, bulkhead.Config{}, true},
		{"negative MaxQueue", bulkhead.Config{MaxQueue: -1}, bulkhead.Config{}, true},
		{"negative MaxWait", bulkhead.Config{MaxWait: -time.Nanosecond}, bulkhead.Config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bulkhead.New(tt.cfg, nil) // a nil Option is ignored
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New(%+v) = nil error, want one", tt.cfg)
				}
				if _, gerr := bulkhead.NewGroup(tt.cfg, 0); gerr == nil {
					t.Errorf("NewGroup(%+v) = nil error, want one", tt.cfg)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v): %v", tt.cfg, err)
			}
			if got := b.Config(); got != tt.want {
				t.Errorf("Config() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	if !errors.Is(bulkhead.ErrWaitTimeout, bulkhead.ErrFull) {
		t.Error("ErrWaitTimeout does not match ErrFull")
	}
	if errors.Is(bulkhead.ErrFull, bulkhead.ErrWaitTimeout) {
		t.Error("ErrFull matches ErrWaitTimeout")
	}
	for _, err := range []error{bulkhead.ErrFull, bulkhead.ErrWaitTimeout} {
		if got := err.Error(); len(got) < 9 || got[:9] != "bulkhead:" {
			t.Errorf("error text %q does not start with the package name", got)
		}
	}
}

// TestAcquireEdges covers every admission edge. Each case ends with
// finish(), which checks that no slot leaked.
func TestAcquireEdges(t *testing.T) {
	tests := []struct {
		name string
		cfg  bulkhead.Config
		run  func(t *testing.T, h *harness)
	}{
		{
			name: "free slot: acquired at once",
			cfg:  bulkhead.Config{MaxConcurrent: 2},
			run: func(t *testing.T, h *harness) {
				p, err := h.b.Acquire(context.Background())
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				if got := h.b.InFlight(); got != 1 {
					t.Errorf("InFlight = %d, want 1", got)
				}
				p.Release()
			},
		},
		{
			name: "no queue, all slots held: ErrFull at once",
			cfg:  bulkhead.Config{MaxConcurrent: 2, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.hold(2)
				if _, err := h.b.Acquire(context.Background()); err != bulkhead.ErrFull {
					t.Errorf("Acquire = %v, want ErrFull", err)
				}
			},
		},
		{
			name: "queue full: ErrFull at once",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 2, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				h.queue(2)
				if _, err := h.b.Acquire(context.Background()); err != bulkhead.ErrFull {
					t.Errorf("Acquire = %v, want ErrFull", err)
				}
				if got := h.b.Queued(); got != 2 {
					t.Errorf("Queued = %d, want 2", got)
				}
			},
		},
		{
			name: "TryAcquire never waits",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 5, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				if p, ok := h.b.TryAcquire(); ok {
					p.Release()
					t.Error("TryAcquire succeeded with every slot held")
				}
				if got := h.b.Queued(); got != 0 {
					t.Errorf("Queued = %d, want 0", got)
				}
			},
		},
		{
			name: "max wait elapsed: ErrWaitTimeout, which is ErrFull",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				ch := h.start(context.Background())
				h.clk.Advance(999 * time.Millisecond)
				select {
				case r := <-ch:
					t.Fatalf("Acquire returned %v before MaxWait", r.err)
				default:
				}
				h.clk.Advance(time.Millisecond)
				r := recv(t, ch)
				if r.err != bulkhead.ErrWaitTimeout || !errors.Is(r.err, bulkhead.ErrFull) {
					t.Errorf("Acquire = %v, want ErrWaitTimeout matching ErrFull", r.err)
				}
				if got := h.b.Queued(); got != 0 {
					t.Errorf("Queued = %d after timeout, want 0", got)
				}
			},
		},
		{
			name: "slot handed over as MaxWait elapses: caller keeps it",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Second},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				ch := h.start(context.Background())
				h.held[0].Release() // hands the slot to the waiter...
				h.clk.Advance(time.Second)
				h.held = nil // ...which now owns it
				r := recv(t, ch)
				if r.err != nil {
					t.Fatalf("Acquire = %v, want the handed-over slot", r.err)
				}
				r.p.Release()
			},
		},
		{
			name: "ctx cancelled while queued: ctx error, slot not leaked",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 2, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				ctx, cancel := context.WithCancel(context.Background())
				ch := h.start(ctx)
				h.queue(1) // a waiter behind the cancelled one
				cancel()
				if r := recv(t, ch); r.err != context.Canceled {
					t.Errorf("Acquire = %v, want context.Canceled", r.err)
				}
				if got := h.b.Queued(); got != 1 {
					t.Errorf("Queued = %d after cancel, want 1", got)
				}
			},
		},
		{
			name: "ctx deadline while queued, no MaxWait: DeadlineExceeded",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				defer cancel()
				ch := make(chan result, 1)
				go func() {
					p, err := h.b.Acquire(ctx)
					ch <- result{p, err}
				}()
				if r := recv(t, ch); r.err != context.DeadlineExceeded {
					t.Errorf("Acquire = %v, want context.DeadlineExceeded", r.err)
				}
			},
		},
		{
			name: "ctx already done: ctx error even with a free slot",
			cfg:  bulkhead.Config{MaxConcurrent: 1},
			run: func(t *testing.T, h *harness) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if _, err := h.b.Acquire(ctx); err != context.Canceled {
					t.Errorf("Acquire = %v, want context.Canceled", err)
				}
				if got := h.b.InFlight(); got != 0 {
					t.Errorf("InFlight = %d, want 0", got)
				}
			},
		},
		{
			name: "no MaxWait: waits until a slot is released",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				h.queue(1)
				h.clk.Advance(24 * time.Hour) // no timer: time alone changes nothing
				if got := h.b.Queued(); got != 1 {
					t.Errorf("Queued = %d, want 1", got)
				}
			},
		},
		{
			name: "release twice: second is a no-op",
			cfg:  bulkhead.Config{MaxConcurrent: 2},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				p, _ := h.b.TryAcquire()
				copied := p
				p.Release()
				p.Release()
				copied.Release()
				if got := h.b.InFlight(); got != 1 {
					t.Errorf("InFlight = %d after double release, want 1", got)
				}
			},
		},
		{
			name: "stale release after the slot was reused: no-op",
			cfg:  bulkhead.Config{MaxConcurrent: 1},
			run: func(t *testing.T, h *harness) {
				old, _ := h.b.TryAcquire()
				old.Release()
				h.hold(1) // the same slot, a new generation
				old.Release()
				if got := h.b.InFlight(); got != 1 {
					t.Errorf("InFlight = %d, want 1: a stale Release freed the new holder's slot", got)
				}
				if p, ok := h.b.TryAcquire(); ok {
					p.Release()
					t.Error("TryAcquire succeeded: a stale Release freed a held slot")
				}
			},
		},
		{
			name: "stale release while a waiter is queued: waiter keeps waiting",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				old, _ := h.b.TryAcquire()
				old.Release()
				h.hold(1)
				h.queue(1)
				old.Release()
				if got := h.b.Queued(); got != 1 {
					t.Errorf("Queued = %d, want 1: a stale Release handed a slot over", got)
				}
			},
		},
		{
			name: "zero Permit: Release is a no-op",
			cfg:  bulkhead.Config{MaxConcurrent: 1},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				var p bulkhead.Permit
				p.Release()
				if got := h.b.InFlight(); got != 1 {
					t.Errorf("InFlight = %d, want 1", got)
				}
			},
		},
		{
			name: "release hands the slot to waiters in FIFO order",
			cfg:  bulkhead.Config{MaxConcurrent: 1, MaxQueue: 3, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.hold(1)
				var chs []chan result
				for range 3 {
					chs = append(chs, h.start(context.Background()))
				}
				h.held[0].Release()
				h.held = nil
				for i, ch := range chs {
					r := recv(t, ch)
					if r.err != nil {
						t.Fatalf("waiter %d: %v", i, r.err)
					}
					for j, later := range chs[i+1:] {
						select {
						case <-later:
							t.Fatalf("waiter %d got a slot before waiter %d", i+j+1, i)
						default:
						}
					}
					if got := h.b.InFlight(); got != 1 {
						t.Errorf("InFlight = %d, want 1", got)
					}
					r.p.Release()
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			tt.run(t, h)
			h.finish()
		})
	}
}

// TestCancelRacesHandOver makes the classic race happen: a slot is handed
// to a waiter at the same moment its context is cancelled. Whichever way the
// waiter's select goes, the slot must end up held by exactly one party.
func TestCancelRacesHandOver(t *testing.T) {
	clk := newFakeClock()
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Hour}, bulkhead.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	var won, lost int
	for i := range 200 {
		holder, _ := b.TryAcquire()
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan result, 1)
		go func() {
			p, err := b.Acquire(ctx)
			ch <- result{p, err}
		}()
		clk.WaitTimer(t)
		// Hand-over and cancellation, in either order, both as close as
		// possible to each other.
		if i%2 == 0 {
			holder.Release()
			cancel()
		} else {
			cancel()
			holder.Release()
		}
		r := recv(t, ch)
		switch {
		case r.err == nil:
			won++
			if got := b.InFlight(); got != 1 {
				t.Fatalf("waiter won the slot but InFlight = %d", got)
			}
			r.p.Release()
		case r.err == context.Canceled:
			lost++
		default:
			t.Fatalf("Acquire = %v", r.err)
		}
		if got := b.InFlight(); got != 0 {
			t.Fatalf("InFlight = %d after the round, want 0 (won=%d lost=%d)", got, won, lost)
		}
	}
	t.Logf("waiter kept the slot %d times, gave it back %d times", won, lost)
	checkNoLeak(t, b)
}

// TestStress runs many goroutines that acquire, cancel, time out and release
// (sometimes twice) at random, then checks that the limit was never exceeded
// and that no slot leaked.
func TestStress(t *testing.T) {
	const (
		maxConc = 3
		workers = 8
		rounds  = 300
	)
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: maxConc, MaxQueue: 4, MaxWait: 200 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		running int
		peak    int
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				ctx, cancel := context.WithCancel(context.Background())
				if (i+w)%3 == 0 {
					go cancel() // races with admission and hand-over
				}
				p, err := b.Acquire(ctx)
				if err != nil {
					cancel()
					if !errors.Is(err, bulkhead.ErrFull) && err != context.Canceled {
						t.Errorf("Acquire = %v", err)
					}
					continue
				}
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				running--
				mu.Unlock()
				p.Release()
				if i%2 == 0 {
					p.Release()
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if peak > maxConc {
		t.Errorf("peak concurrency %d > MaxConcurrent %d", peak, maxConc)
	}
	checkNoLeak(t, b)
}

func TestDo(t *testing.T) {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	errFn := errors.New("fn failed")
	err = b.Do(context.Background(), func(context.Context) error {
		if got := b.InFlight(); got != 1 {
			t.Errorf("InFlight inside Do = %d, want 1", got)
		}
		if err := b.Do(context.Background(), func(context.Context) error { return nil }); err != bulkhead.ErrFull {
			t.Errorf("nested Do = %v, want ErrFull", err)
		}
		return errFn
	})
	if err != errFn {
		t.Errorf("Do = %v, want fn's error", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = b.Do(context.Background(), func(context.Context) error { panic("boom") })
	}()
	checkNoLeak(t, b)
}

func TestNoAllocs(t *testing.T) {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		p, err := b.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
	}); n != 0 {
		t.Errorf("Acquire+Release: %v allocs, want 0", n)
	}
	held, _ := b.TryAcquire()
	defer held.Release()
	if n := testing.AllocsPerRun(100, func() {
		if _, err := b.Acquire(ctx); err != bulkhead.ErrFull {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("rejected Acquire: %v allocs, want 0", n)
	}
}

// AsRefusal makes a wait ended by the context match ErrFull, keeping the
// context's error, and leaves ErrFull's own errors and nil as they are.
func TestAsRefusal(t *testing.T) {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err = b.Acquire(ctx) // queued, until the deadline
	if err = bulkhead.AsRefusal(err); !errors.Is(err, bulkhead.ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queue wait ended by its deadline: %v, want ErrFull and DeadlineExceeded", err)
	}
	if err := bulkhead.AsRefusal(bulkhead.ErrWaitTimeout); err != bulkhead.ErrWaitTimeout {
		t.Errorf("AsRefusal(ErrWaitTimeout) = %v, want it unchanged", err)
	}
	if err := bulkhead.AsRefusal(nil); err != nil {
		t.Errorf("AsRefusal(nil) = %v", err)
	}
}

// TestPermitWaited: a permit reports how long its Acquire queued, by the
// bulkhead's clock; a slot free at once waited 0.
func TestPermitWaited(t *testing.T) {
	h := newHarness(t, bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: time.Minute})
	p, err := h.b.Acquire(context.Background())
	if err != nil || p.Waited() != 0 {
		t.Fatalf("Acquire of a free slot: waited %v, %v; want 0, nil", p.Waited(), err)
	}
	ch := h.start(context.Background())
	h.clk.Advance(7 * time.Second)
	p.Release()
	r := recv(t, ch)
	if r.err != nil || r.p.Waited() != 7*time.Second {
		t.Errorf("queued Acquire: waited %v, %v; want 7s, nil", r.p.Waited(), r.err)
	}
	r.p.Release()
	if q, ok := h.b.TryAcquire(); !ok || q.Waited() != 0 {
		t.Errorf("TryAcquire: %v, waited %v; want a slot, 0", ok, q.Waited())
	} else {
		q.Release()
	}
	h.finish()
}
