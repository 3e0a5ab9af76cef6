package ratelimit_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/ratelimit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ratelimit.Config
		wantErr bool
	}{
		{"valid", ratelimit.Config{Rate: 10, Burst: 1}, false},
		{"valid with MaxWait", ratelimit.Config{Rate: 0.5, Burst: 3, MaxWait: time.Second}, false},
		{"infinite rate is rate.Inf", ratelimit.Config{Rate: rate.Inf, Burst: 1}, false},
		{"zero Config", ratelimit.Config{}, true},
		{"zero rate", ratelimit.Config{Rate: 0, Burst: 1}, true},
		{"negative rate", ratelimit.Config{Rate: -1, Burst: 1}, true},
		{"NaN rate", ratelimit.Config{Rate: rate.Limit(math.NaN()), Burst: 1}, true},
		{"burst 0", ratelimit.Config{Rate: 10, Burst: 0}, true},
		{"burst < 0", ratelimit.Config{Rate: 10, Burst: -1}, true},
		{"burst 0 with rate.Inf", ratelimit.Config{Rate: rate.Inf}, true},
		{"negative MaxWait", ratelimit.Config{Rate: 10, Burst: 1, MaxWait: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ratelimit.New(tt.cfg, nil) // a nil Option is ignored
			_, gerr := ratelimit.NewGroup(tt.cfg, 0)
			if tt.wantErr {
				if err == nil || gerr == nil {
					t.Fatalf("New, NewGroup(%+v) = %v, %v; want errors", tt.cfg, err, gerr)
				}
				if msg := err.Error(); msg[:10] != "ratelimit:" {
					t.Errorf("error %q does not start with the package name", msg)
				}
				return
			}
			if err != nil || gerr != nil {
				t.Fatalf("New, NewGroup(%+v) = %v, %v", tt.cfg, err, gerr)
			}
			if got := l.Config(); got != tt.cfg {
				t.Errorf("Config() = %+v, want %+v", got, tt.cfg)
			}
		})
	}
}

type harness struct {
	t   *testing.T
	l   *ratelimit.Limiter
	clk *fakeClock
}

func newHarness(t *testing.T, cfg ratelimit.Config) *harness {
	t.Helper()
	clk := newFakeClock()
	l, err := ratelimit.New(cfg, ratelimit.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, l: l, clk: clk}
}

// drain empties the bucket with Allow.
func (h *harness) drain() {
	h.t.Helper()
	for h.l.Allow() {
	}
	if got := h.l.Tokens(); got != 0 {
		h.t.Fatalf("Tokens = %v after draining, want 0", got)
	}
}

// start runs Wait(ctx) in a goroutine and returns once it waits on a timer,
// with the timer's duration.
func (h *harness) start(ctx context.Context) (chan error, time.Duration) {
	h.t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- h.l.Wait(ctx) }()
	return ch, h.clk.WaitTimer(h.t)
}

func (h *harness) wantTokens(want float64) {
	h.t.Helper()
	if got := h.l.Tokens(); math.Abs(got-want) > 1e-9 {
		h.t.Errorf("Tokens = %v, want %v", got, want)
	}
}

// tokenKept checks that the rejections before it started no timer and
// took no token: the bucket, empty, holds a token one interval later.
func (h *harness) tokenKept(interval time.Duration) {
	h.t.Helper()
	h.noTimer()
	h.wantTokens(0)
	h.clk.Advance(interval)
	if !h.l.Allow() {
		h.t.Error("no token one interval after the rejections: a rejection kept a token")
	}
}

func (h *harness) noTimer() {
	h.t.Helper()
	if d, ok := h.clk.TimerStarted(); ok {
		h.t.Errorf("a timer of %v was started; want no wait", d)
	}
}

func recvErr(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return nil
	}
}

// deadlineIn returns a context whose deadline is d after the fake clock's
// now. The fake clock is years ahead of the system clock, so the context
// never expires by itself during the test.
func deadlineIn(t *testing.T, clk *fakeClock, d time.Duration) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(d))
	t.Cleanup(cancel)
	return ctx
}

// TestWaitEdges covers every edge of Wait and Allow. The limiter refills one
// token every 100ms.
func TestWaitEdges(t *testing.T) {
	const every = 100 * time.Millisecond
	tests := []struct {
		name string
		cfg  ratelimit.Config
		run  func(t *testing.T, h *harness)
	}{
		{
			name: "token available: nil at once",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 2},
			run: func(t *testing.T, h *harness) {
				for range 2 {
					if err := h.l.Wait(context.Background()); err != nil {
						t.Fatalf("Wait = %v", err)
					}
				}
				h.noTimer()
				h.wantTokens(0)
			},
		},
		{
			name: "MaxWait 0, bucket empty: ErrLimited at once, no token lost",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1},
			run: func(t *testing.T, h *harness) {
				h.drain()
				for range 3 {
					if err := h.l.Wait(context.Background()); err != ratelimit.ErrLimited {
						t.Fatalf("Wait = %v, want ErrLimited", err)
					}
				}
				h.tokenKept(every)
			},
		},
		{
			name: "token within MaxWait: waits on the clock, then nil",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: time.Second},
			run: func(t *testing.T, h *harness) {
				h.drain()
				ch, d := h.start(context.Background())
				if d != every {
					t.Errorf("waited %v, want %v", d, every)
				}
				h.clk.Advance(every - time.Nanosecond)
				select {
				case err := <-ch:
					t.Fatalf("Wait returned %v before the token was due", err)
				default:
				}
				h.clk.Advance(time.Nanosecond)
				if err := recvErr(t, ch); err != nil {
					t.Errorf("Wait = %v, want nil", err)
				}
				h.wantTokens(0)
			},
		},
		{
			name: "token exactly at MaxWait: waits",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: every},
			run: func(t *testing.T, h *harness) {
				h.drain()
				ch, _ := h.start(context.Background())
				h.clk.Advance(every)
				if err := recvErr(t, ch); err != nil {
					t.Errorf("Wait = %v, want nil", err)
				}
			},
		},
		{
			name: "token after MaxWait: ErrLimited at once, reservation cancelled",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: every - time.Nanosecond},
			run: func(t *testing.T, h *harness) {
				h.drain()
				for range 3 {
					if err := h.l.Wait(context.Background()); err != ratelimit.ErrLimited {
						t.Fatalf("Wait = %v, want ErrLimited", err)
					}
				}
				h.tokenKept(every)
			},
		},
		{
			name: "token after ctx deadline (within MaxWait): ErrLimited at once, reservation cancelled",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.drain()
				ctx := deadlineIn(t, h.clk, every-time.Nanosecond)
				if err := h.l.Wait(ctx); err != ratelimit.ErrLimited {
					t.Fatalf("Wait = %v, want ErrLimited", err)
				}
				h.tokenKept(every)
			},
		},
		{
			name: "token exactly at ctx deadline: waits",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				h.drain()
				ch, d := h.start(deadlineIn(t, h.clk, every))
				if d != every {
					t.Errorf("waited %v, want %v", d, every)
				}
				h.clk.Advance(every)
				if err := recvErr(t, ch); err != nil {
					t.Errorf("Wait = %v, want nil", err)
				}
			},
		},
		{
			name: "ctx cancelled while waiting: ctx error, token given back",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: time.Second},
			run: func(t *testing.T, h *harness) {
				h.drain()
				ctx, cancel := context.WithCancel(context.Background())
				ch, _ := h.start(ctx)
				h.wantTokens(-1) // reserved
				cancel()
				if err := recvErr(t, ch); err != context.Canceled {
					t.Errorf("Wait = %v, want context.Canceled", err)
				}
				h.wantTokens(0)
				h.clk.Advance(every)
				if !h.l.Allow() {
					t.Error("no token one interval later: the cancelled wait kept its token")
				}
			},
		},
		{
			name: "ctx already done: ctx error, no token taken",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: time.Second},
			run: func(t *testing.T, h *harness) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := h.l.Wait(ctx); err != context.Canceled {
					t.Errorf("Wait = %v, want context.Canceled", err)
				}
				h.wantTokens(1)
			},
		},
		{
			name: "waiters queue behind each other",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: 2 * every},
			run: func(t *testing.T, h *harness) {
				h.drain()
				first, d1 := h.start(context.Background())
				second, d2 := h.start(context.Background())
				if d1 != every || d2 != 2*every {
					t.Errorf("waits = %v, %v; want %v, %v", d1, d2, every, 2*every)
				}
				if err := h.l.Wait(context.Background()); err != ratelimit.ErrLimited {
					t.Errorf("third Wait = %v, want ErrLimited (3 intervals > MaxWait)", err)
				}
				h.clk.Advance(every)
				if err := recvErr(t, first); err != nil {
					t.Errorf("first Wait = %v", err)
				}
				h.clk.Advance(every)
				if err := recvErr(t, second); err != nil {
					t.Errorf("second Wait = %v", err)
				}
				h.wantTokens(0)
			},
		},
		{
			name: "Allow: takes a token or reports false, never waits",
			cfg:  ratelimit.Config{Rate: rate.Every(every), Burst: 2, MaxWait: time.Hour},
			run: func(t *testing.T, h *harness) {
				got := []bool{h.l.Allow(), h.l.Allow(), h.l.Allow()}
				h.clk.Advance(every)
				got = append(got, h.l.Allow(), h.l.Allow())
				want := []bool{true, true, false, true, false}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("Allow results = %v, want %v", got, want)
					}
				}
				h.noTimer()
			},
		},
		{
			name: "rate.Inf: every call passes",
			cfg:  ratelimit.Config{Rate: rate.Inf, Burst: 1},
			run: func(t *testing.T, h *harness) {
				for range 100 {
					if !h.l.Allow() {
						t.Fatal("Allow = false with rate.Inf")
					}
					if err := h.l.Wait(context.Background()); err != nil {
						t.Fatalf("Wait = %v with rate.Inf", err)
					}
				}
				h.wantTokens(1)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newHarness(t, tt.cfg))
		})
	}
}

func TestErrLimited(t *testing.T) {
	if !errors.Is(ratelimit.ErrLimited, ratelimit.ErrLimited) || ratelimit.ErrLimited.Error() != "ratelimit: limited" {
		t.Errorf("ErrLimited = %q", ratelimit.ErrLimited)
	}
}

// TestConcurrentRejectionsLoseNoToken has many goroutines wait at once, over
// and over, on a drained bucket, each stopping at its first success. Exactly
// the calls whose token is due within MaxWait wait; every other one is
// rejected, and its cancelled reservation gives back its whole token even
// while other calls reserve and cancel at the same time, so the bucket ends
// exactly as if only the successful calls had come.
func TestConcurrentRejectionsLoseNoToken(t *testing.T) {
	const (
		every   = time.Second
		workers = 8
		rounds  = 500
	)
	h := newHarness(t, ratelimit.Config{Rate: rate.Every(every), Burst: 2, MaxWait: 2*every + every/2})
	var (
		passed   = make(chan int, workers) // rejections seen before passing
		rejected = make(chan struct{}, workers)
		start    = make(chan struct{})
	)
	for range workers {
		go func() {
			<-start
			for i := range rounds {
				switch err := h.l.Wait(context.Background()); err {
				case nil:
					passed <- i
					return
				case ratelimit.ErrLimited:
				default:
					t.Errorf("Wait = %v", err)
				}
			}
			rejected <- struct{}{}
		}()
	}
	close(start)
	// Two calls pass at once (the burst), two wait (due in 1s and 2s), all
	// the others are rejected every time.
	waits := []time.Duration{h.clk.WaitTimer(t), h.clk.WaitTimer(t)}
	if waits[0]+waits[1] != 3*every {
		t.Errorf("waits = %v, want 1s and 2s", waits)
	}
	for range 2 {
		<-passed
	}
	for range workers - 4 {
		<-rejected
	}
	h.wantTokens(-2) // the two waiters' reservations, nothing more
	h.clk.Advance(2 * every)
	for range 2 {
		<-passed
	}
	h.wantTokens(0)
}

func TestNoAllocs(t *testing.T) {
	ctx := context.Background()
	always, _ := ratelimit.New(ratelimit.Config{Rate: 1e12, Burst: 1 << 20, MaxWait: time.Second})
	never, _ := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1, MaxWait: time.Second})
	neverNoWait, _ := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1})
	never.Allow()
	neverNoWait.Allow()
	tests := []struct {
		name string
		fn   func()
	}{
		{"Wait, token available", func() { _ = always.Wait(ctx) }},
		{"Allow, token available", func() { always.Allow() }},
		{"Wait rejected, MaxWait 0", func() { _ = neverNoWait.Wait(ctx) }},
		{"Wait rejected, token after MaxWait", func() { _ = never.Wait(ctx) }},
		{"Allow rejected", func() { never.Allow() }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocs, want 0", tt.name, n)
		}
	}
}

// TestTakeReportsWait: Take returns the delay it waited out, and 0 when a
// token was there at once or when it fails.
func TestTakeReportsWait(t *testing.T) {
	const every = 100 * time.Millisecond
	h := newHarness(t, ratelimit.Config{Rate: rate.Every(every), Burst: 1, MaxWait: time.Second})
	if d, err := h.l.Take(context.Background()); d != 0 || err != nil {
		t.Fatalf("Take with a token: %v, %v; want 0, nil", d, err)
	}
	type taken struct {
		d   time.Duration
		err error
	}
	ch := make(chan taken, 1)
	go func() {
		d, err := h.l.Take(context.Background())
		ch <- taken{d, err}
	}()
	h.clk.WaitTimer(t)
	h.clk.Advance(every)
	if r := <-ch; r.d != every || r.err != nil {
		t.Errorf("Take that waited: %v, %v; want %v, nil", r.d, r.err, every)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := h.l.Take(ctx); d != 0 || err != context.Canceled {
		t.Errorf("Take on a done context: %v, %v; want 0, Canceled", d, err)
	}
}

// TestCancelDuringRejectionsKeepsToken: a waiter that gives up while other
// calls are being rejected (each reserving a token and cancelling it) gets
// its token back. Their cancellations used to interleave with its own, and
// x/time/rate then returned nothing to it: a token lost for a whole period.
func TestCancelDuringRejectionsKeepsToken(t *testing.T) {
	for trial := range 100 {
		h := newHarness(t, ratelimit.Config{Rate: rate.Every(time.Second), Burst: 1, MaxWait: time.Hour})
		h.drain()
		ctx, cancel := context.WithCancel(context.Background())
		ch, _ := h.start(ctx)
		// A real deadline before the fake clock's time: every Take reserves
		// the next token, finds it too late and cancels the reservation.
		rctx, rcancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		running := make(chan struct{}, 2)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10000 {
					if _, err := h.l.Take(rctx); err != ratelimit.ErrLimited {
						t.Errorf("Take = %v, want ErrLimited", err)
						return
					}
					if i == 0 {
						running <- struct{}{}
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		<-running
		<-running
		cancel()
		if err := recvErr(t, ch); err != context.Canceled {
			t.Fatalf("trial %d: waiter: %v, want Canceled", trial, err)
		}
		close(stop)
		wg.Wait()
		rcancel()
		if got := h.l.Tokens(); got != 0 {
			t.Fatalf("trial %d: Tokens = %v after the waiter gave up, want 0 (its token back)", trial, got)
		}
	}
}
