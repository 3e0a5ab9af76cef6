package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rampart-go/rampart/retry"
)

var errBoom = errors.New("boom")

// notRetryable is a caller error that says it must not be retried.
type retryableErr struct{ ok bool }

func (e retryableErr) Error() string   { return "custom" }
func (e retryableErr) Retryable() bool { return e.ok }

// script returns an op that returns errs[i] on attempt i+1 (nil past the end)
// and records each Attempt it saw.
func script(seen *[]retry.Attempt, errs ...error) func(context.Context, retry.Attempt) error {
	return func(_ context.Context, a retry.Attempt) error {
		*seen = append(*seen, a)
		if a.Number-1 < len(errs) {
			return errs[a.Number-1]
		}
		return nil
	}
}

func waits(seen []retry.Attempt) []time.Duration {
	out := make([]time.Duration, 0, len(seen))
	for _, a := range seen {
		out = append(out, a.Waited)
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDoTable(t *testing.T) {
	const ms = time.Millisecond
	noJitter := retry.Policy{BaseDelay: 100 * ms, MaxDelay: 250 * ms, Jitter: -1, MaxAttempts: 5}
	tests := []struct {
		name      string
		policy    retry.Policy
		errs      []error
		wantWaits []time.Duration
		check     func(t *testing.T, err error)
	}{
		{
			name:      "first attempt succeeds",
			policy:    noJitter,
			wantWaits: []time.Duration{0},
			check:     wantNil,
		},
		{
			name:      "capped exponential curve",
			policy:    noJitter,
			errs:      []error{errBoom, errBoom, errBoom, errBoom},
			wantWaits: []time.Duration{0, 100 * ms, 200 * ms, 250 * ms, 250 * ms},
			check:     wantNil,
		},
		{
			name:      "attempts exhausted wraps cause and count",
			policy:    noJitter,
			errs:      []error{errBoom, errBoom, errBoom, errBoom, errBoom},
			wantWaits: []time.Duration{0, 100 * ms, 200 * ms, 250 * ms, 250 * ms},
			check:     wantExhausted(5, retry.ErrExhausted),
		},
		{
			name:      "zero policy: three attempts",
			policy:    retry.Policy{},
			errs:      []error{errBoom, errBoom, errBoom},
			wantWaits: nil, // jittered
			check:     wantExhausted(3, retry.ErrExhausted),
		},
		{
			name:      "MaxAttempts 1 never retries",
			policy:    retry.Policy{MaxAttempts: 1},
			errs:      []error{errBoom},
			wantWaits: []time.Duration{0},
			check:     wantExhausted(1, retry.ErrExhausted),
		},
		{
			name:      "Permanent is returned bare",
			policy:    noJitter,
			errs:      []error{retry.Permanent(errBoom)},
			wantWaits: []time.Duration{0},
			check:     wantBare(errBoom),
		},
		{
			name:      "Retryable false stops",
			policy:    noJitter,
			errs:      []error{retryableErr{ok: false}},
			wantWaits: []time.Duration{0},
			check:     wantBare(retryableErr{ok: false}),
		},
		{
			name:      "Retryable true retries",
			policy:    noJitter,
			errs:      []error{retryableErr{ok: true}},
			wantWaits: []time.Duration{0, 100 * ms},
			check:     wantNil,
		},
		{
			name:      "outermost marker decides",
			policy:    noJitter,
			errs:      []error{retry.Pushback(retry.Permanent(errBoom), 0)},
			wantWaits: []time.Duration{0, 100 * ms},
			check:     wantNil,
		},
		{
			name:      "pushback larger than cap is capped",
			policy:    retry.Policy{BaseDelay: 100 * ms, MaxDelay: 250 * ms, Jitter: -1, MaxPushback: time.Second},
			errs:      []error{retry.Pushback(errBoom, time.Hour)},
			wantWaits: []time.Duration{0, time.Second},
			check:     wantNil,
		},
		{
			name:      "pushback cap defaults to MaxDelay",
			policy:    noJitter,
			errs:      []error{retry.Pushback(errBoom, time.Hour)},
			wantWaits: []time.Duration{0, 250 * ms},
			check:     wantNil,
		},
		{
			name:      "pushback is a lower bound",
			policy:    noJitter,
			errs:      []error{retry.Pushback(errBoom, 10*ms), retry.Pushback(errBoom, 150*ms)},
			wantWaits: []time.Duration{0, 100 * ms, 200 * ms},
			check:     wantNil,
		},
		{
			name:      "pushback above backoff wins",
			policy:    noJitter,
			errs:      []error{retry.Pushback(errBoom, 220*ms)},
			wantWaits: []time.Duration{0, 220 * ms},
			check:     wantNil,
		},
		{
			name:      "negative pushback means stop",
			policy:    noJitter,
			errs:      []error{retry.Pushback(errBoom, -1)},
			wantWaits: []time.Duration{0},
			check:     wantBare(errBoom),
		},
		{
			name:      "negative MaxPushback ignores pushback delays",
			policy:    retry.Policy{BaseDelay: 100 * ms, Jitter: -1, MaxPushback: -1},
			errs:      []error{retry.Pushback(errBoom, time.Hour)},
			wantWaits: []time.Duration{0, 100 * ms},
			check:     wantNil,
		},
		{
			name:      "negative MaxPushback still honours stop",
			policy:    retry.Policy{MaxPushback: -1},
			errs:      []error{retry.Pushback(errBoom, -time.Second)},
			wantWaits: []time.Duration{0},
			check:     wantBare(errBoom),
		},
		{
			name:      "multiplier below 1 is constant",
			policy:    retry.Policy{BaseDelay: 50 * ms, Jitter: -1, Multiplier: 0.5, MaxAttempts: 4},
			errs:      []error{errBoom, errBoom, errBoom},
			wantWaits: []time.Duration{0, 50 * ms, 50 * ms, 50 * ms},
			check:     wantNil,
		},
		{
			name:      "MaxDelay below BaseDelay uses BaseDelay",
			policy:    retry.Policy{BaseDelay: 50 * ms, MaxDelay: 10 * ms, Jitter: -1},
			errs:      []error{errBoom, errBoom},
			wantWaits: []time.Duration{0, 50 * ms, 50 * ms},
			check:     wantNil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newAutoClock()
			p := retry.NewPolicy(tc.policy, retry.WithClock(clk))
			var seen []retry.Attempt
			err := p.Do(context.Background(), script(&seen, tc.errs...))
			tc.check(t, err)
			if tc.wantWaits != nil && !equalDurations(waits(seen), tc.wantWaits) {
				t.Errorf("waits = %v, want %v", waits(seen), tc.wantWaits)
			}
			for i, a := range seen {
				if a.Number != i+1 {
					t.Errorf("attempt %d has Number %d", i+1, a.Number)
				}
			}
		})
	}
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
}

func wantBare(cause error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if err != cause {
			t.Fatalf("err = %#v, want the cause itself %#v", err, cause)
		}
	}
}

func wantExhausted(attempts int, reason error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ee *retry.ExhaustedError
		if !errors.As(err, &ee) {
			t.Fatalf("err = %v, want *ExhaustedError", err)
		}
		if ee.Attempts != attempts || ee.Reason != reason || ee.Last != errBoom {
			t.Fatalf("got %+v, want attempts %d reason %v last %v", ee, attempts, reason, errBoom)
		}
		if !errors.Is(err, errBoom) || !errors.Is(err, reason) {
			t.Fatalf("errors.Is(%v) fails for cause or reason", err)
		}
		if (reason == retry.ErrExhausted || reason == retry.ErrBudget) != errors.Is(err, retry.ErrExhausted) {
			t.Fatalf("errors.Is(err, ErrExhausted) = %v for reason %v", errors.Is(err, retry.ErrExhausted), reason)
		}
	}
}

func TestDeadlineShorterThanNextDelayReturnsAtOnce(t *testing.T) {
	clk := newLiveClock()
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(time.Hour))
	defer cancel()
	p := retry.NewPolicy(retry.Policy{BaseDelay: 2 * time.Hour, MaxDelay: 3 * time.Hour, Jitter: -1},
		retry.WithClock(clk))
	start := clk.Now()
	calls := 0
	err := p.Do(ctx, func(context.Context, retry.Attempt) error { calls++; return errBoom })
	if calls != 1 {
		t.Fatalf("calls = %d, want 1", calls)
	}
	if !clk.Now().Equal(start) {
		t.Fatalf("the loop slept %v; it must return at once", clk.Now().Sub(start))
	}
	wantExhausted(1, context.DeadlineExceeded)(t, err)
	if ctx.Err() != nil {
		t.Fatal("caller context expired; the test relies on it being alive")
	}
}

func TestDeadlineCutsLaterRetry(t *testing.T) {
	clk := newLiveClock()
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(time.Hour))
	defer cancel()
	// Waits would be 20m, 40m: after the first, 40m remain, so the second
	// wait would end exactly at the deadline and is not taken.
	p := retry.NewPolicy(retry.Policy{BaseDelay: 20 * time.Minute, MaxDelay: time.Hour, Jitter: -1, MaxAttempts: 10},
		retry.WithClock(clk))
	var seen []retry.Attempt
	err := p.Do(ctx, script(&seen, errBoom, errBoom, errBoom))
	wantExhausted(2, context.DeadlineExceeded)(t, err)
	if !equalDurations(waits(seen), []time.Duration{0, 20 * time.Minute}) {
		t.Fatalf("waits = %v", waits(seen))
	}
}

func TestCallerContextDoneBeforeFirstAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := (&retry.Policy{}).Do(ctx, func(context.Context, retry.Attempt) error { calls++; return nil })
	if calls != 0 || err != context.Canceled {
		t.Fatalf("calls = %d, err = %v; want 0, context.Canceled", calls, err)
	}
}

func TestCallerCancelDuringAttemptIsTerminal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := retry.NewPolicy(retry.Policy{MaxAttempts: 5}, retry.WithClock(newAutoClock()))
	calls := 0
	err := p.Do(ctx, func(ctx context.Context, _ retry.Attempt) error {
		calls++
		cancel()
		return ctx.Err()
	})
	if calls != 1 {
		t.Fatalf("calls = %d, want 1", calls)
	}
	var ee *retry.ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ExhaustedError matching context.Canceled", err)
	}
	if errors.Is(err, retry.ErrExhausted) {
		t.Fatal("caller cancellation must not match ErrExhausted")
	}
}

func TestCallerCancelDuringWait(t *testing.T) {
	clk := newManualClock()
	p := retry.NewPolicy(retry.Policy{BaseDelay: time.Minute, Jitter: -1}, retry.WithClock(clk))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- p.Do(ctx, func(context.Context, retry.Attempt) error { return errBoom })
	}()
	if d := <-clk.started; d != time.Minute {
		t.Fatalf("wait = %v, want 1m", d)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want context.Canceled and the cause", err)
	}
}

func TestManualClockAdvanceResumes(t *testing.T) {
	clk := newManualClock()
	p := retry.NewPolicy(retry.Policy{BaseDelay: time.Second, Jitter: -1}, retry.WithClock(clk))
	done := make(chan error, 1)
	var seen []retry.Attempt
	op := script(&seen, errBoom)
	go func() { done <- p.Do(context.Background(), op) }()
	<-clk.started
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !equalDurations(waits(seen), []time.Duration{0, time.Second}) {
		t.Fatalf("waits = %v", waits(seen))
	}
}

func TestAttemptTimeoutIsRetryable(t *testing.T) {
	// Real clock: the first attempt blocks until its own timeout fires (an
	// event, not a sleep); the second succeeds.
	p := &retry.Policy{AttemptTimeout: time.Millisecond, BaseDelay: time.Millisecond, Jitter: -1}
	var seen []retry.Attempt
	err := p.Do(context.Background(), func(ctx context.Context, a retry.Attempt) error {
		seen = append(seen, a)
		if _, ok := ctx.Deadline(); !ok {
			t.Error("attempt context has no deadline")
		}
		if a.Number == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	if err != nil || len(seen) != 2 {
		t.Fatalf("err = %v after %d attempts; want success on the 2nd", err, len(seen))
	}
}

func TestAttemptTimeoutNotSetPassesCallerContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, 1)
	err := (&retry.Policy{}).Do(ctx, func(actx context.Context, _ retry.Attempt) error {
		if actx != ctx {
			t.Error("attempt context differs from the caller's with AttemptTimeout 0")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOnRetryEvents(t *testing.T) {
	var events []retry.Event
	p := retry.NewPolicy(retry.Policy{
		BaseDelay: 10 * time.Millisecond, Jitter: -1, MaxPushback: time.Second,
		OnRetry: func(e retry.Event) { events = append(events, e) },
	}, retry.WithClock(newAutoClock()))
	var seen []retry.Attempt
	err := p.Do(context.Background(), script(&seen, errBoom, retry.Pushback(errBoom, time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	want := []retry.Event{
		{Attempt: 1, Err: errBoom, Delay: 10 * time.Millisecond},
		{Attempt: 2, Err: errBoom, Delay: time.Second, Pushback: time.Second},
	}
	if len(events) != len(want) {
		t.Fatalf("events = %+v", events)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, events[i], want[i])
		}
	}
}

func TestNewPolicyFillsDefaults(t *testing.T) {
	p := retry.NewPolicy(retry.Policy{Jitter: -1})
	if p.MaxAttempts != retry.DefaultMaxAttempts || p.BaseDelay != retry.DefaultBaseDelay ||
		p.MaxDelay != retry.DefaultMaxDelay || p.Multiplier != retry.DefaultMultiplier ||
		p.Jitter != -1 || p.MaxPushback != retry.DefaultMaxDelay {
		t.Fatalf("defaults not filled: %+v", p)
	}
	if q := retry.NewPolicy(retry.Policy{}, nil); q.Jitter != retry.DefaultJitter {
		t.Fatalf("Jitter = %v", q.Jitter)
	}
}

func TestMarkersOnNil(t *testing.T) {
	if retry.Permanent(nil) != nil || retry.Pushback(nil, time.Second) != nil {
		t.Fatal("markers must keep nil nil")
	}
	if got := retry.Permanent(errBoom).Error(); got != "boom" {
		t.Fatalf("Permanent text = %q", got)
	}
	if !errors.Is(retry.Pushback(errBoom, 1), errBoom) {
		t.Fatal("Pushback must unwrap")
	}
}

func TestExhaustedErrorText(t *testing.T) {
	tests := []struct {
		err  *retry.ExhaustedError
		want string
	}{
		{&retry.ExhaustedError{Attempts: 3, Last: errBoom, Reason: retry.ErrExhausted}, "retry: attempts exhausted after 3 attempts: boom"},
		{&retry.ExhaustedError{Attempts: 1, Last: errBoom, Reason: retry.ErrBudget}, "retry: retry budget exhausted after 1 attempt: boom"},
		{&retry.ExhaustedError{Attempts: 2, Last: errBoom, Reason: context.Canceled}, "retry: context canceled after 2 attempts: boom"},
		{&retry.ExhaustedError{Attempts: 2}, "retry: attempts exhausted after 2 attempts"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// FuzzWaitBounds checks the wait before each retry: within the cap after
// jitter, at least the capped pushback, and a negative pushback stops.
func FuzzWaitBounds(f *testing.F) {
	f.Add(int64(100e6), int64(5e9), 0.2, int64(-1), int64(0), uint8(4))
	f.Add(int64(1), int64(1), 1.0, int64(1e12), int64(1e9), uint8(6))
	f.Add(int64(3e9), int64(1e9), 0.9, int64(2e9), int64(-1), uint8(3))
	f.Add(int64(1e6), int64(1e15), 0.5, int64(-5), int64(1e6), uint8(2))
	f.Fuzz(func(t *testing.T, base, maxD int64, jitter float64, pushback, maxPB int64, attempts uint8) {
		p := retry.Policy{
			MaxAttempts: int(attempts%8) + 1,
			BaseDelay:   time.Duration(base),
			MaxDelay:    time.Duration(maxD),
			Jitter:      jitter,
			MaxPushback: time.Duration(maxPB),
		}
		np := retry.NewPolicy(p, retry.WithClock(newAutoClock()))
		effMax, effPB := np.MaxDelay, np.MaxPushback
		var seen []retry.Attempt
		err := np.Do(context.Background(), func(_ context.Context, a retry.Attempt) error {
			seen = append(seen, a)
			return retry.Pushback(errBoom, time.Duration(pushback))
		})
		if err == nil {
			t.Fatal("op never succeeds")
		}
		if pushback < 0 {
			if len(seen) != 1 || err != errBoom {
				t.Fatalf("stop pushback retried: %d attempts, err %v", len(seen), err)
			}
			return
		}
		if len(seen) != np.MaxAttempts {
			t.Fatalf("%d attempts, want %d", len(seen), np.MaxAttempts)
		}
		lower := time.Duration(0)
		upper := effMax
		if effPB > 0 {
			lower = min(time.Duration(pushback), effPB)
			upper = max(upper, lower)
		}
		for _, a := range seen[1:] {
			if a.Waited < lower || a.Waited > upper || a.Waited < 0 {
				t.Fatalf("wait %v outside [%v, %v] (policy %+v)", a.Waited, lower, upper, np)
			}
		}
	})
}

// TestCopiedPolicyUsesItsOwnFields: a Policy keeps nothing derived from its
// fields, so a copy of a NewPolicy result (as the transports make per call)
// whose fields are then changed behaves by the changed fields, on the
// success path and the retry path alike, and the original is unaffected.
func TestCopiedPolicyUsesItsOwnFields(t *testing.T) {
	base := retry.NewPolicy(retry.Policy{MaxAttempts: 5, BaseDelay: time.Millisecond, Jitter: -1},
		retry.WithClock(newAutoClock()))
	attempts := func(p *retry.Policy) (n int, waited []time.Duration) {
		t.Helper()
		var seen []retry.Attempt
		err := p.Do(context.Background(), script(&seen, errBoom, errBoom, errBoom, errBoom, errBoom))
		if !errors.Is(err, retry.ErrExhausted) {
			t.Fatalf("err = %v, want exhausted", err)
		}
		return len(seen), waits(seen)
	}
	for range 2 { // a first call must not fix the values a later copy sees
		c := *base
		c.MaxAttempts = 2
		c.BaseDelay = 7 * time.Millisecond
		if n, w := attempts(&c); n != 2 || !equalDurations(w, []time.Duration{0, 7 * time.Millisecond}) {
			t.Fatalf("modified copy: %d attempts, waits %v; want 2, [0 7ms]", n, w)
		}
		if n, _ := attempts(base); n != 5 {
			t.Fatalf("original: %d attempts, want 5", n)
		}
	}

	// AttemptTimeout changed on a copy applies from the first attempt, and
	// a copy that clears it passes the caller's context again.
	c := *base
	c.AttemptTimeout = time.Hour
	err := c.Do(context.Background(), func(ctx context.Context, _ retry.Attempt) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("copy with AttemptTimeout: attempt context has no deadline")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.AttemptTimeout = 0
	ctx := context.Background()
	if err := c.Do(ctx, func(actx context.Context, _ retry.Attempt) error {
		if actx != ctx {
			t.Error("copy with AttemptTimeout cleared: attempt context differs from the caller's")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A literal, and a literal changed between calls.
	lit := retry.Policy{MaxAttempts: 1}
	if n, _ := attempts(&lit); n != 1 {
		t.Fatalf("literal: %d attempts, want 1", n)
	}
	lit.MaxAttempts = 2
	lit.BaseDelay = time.Microsecond
	if n, _ := attempts(&lit); n != 2 {
		t.Fatalf("literal after change: %d attempts, want 2", n)
	}
}

// A non-retryable error comes back as it is, without its Permanent
// wrapper, also when the caller's context ended during that attempt: the
// loop did not stop for the context but for the error.
func TestPermanentErrorAfterCancel(t *testing.T) {
	errBad := errors.New("400 bad request")
	for _, wrap := range []func(error) error{retry.Permanent, func(err error) error { return retry.Pushback(err, -1) }} {
		ctx, cancel := context.WithCancel(context.Background())
		p := &retry.Policy{}
		err := p.Do(ctx, func(context.Context, retry.Attempt) error {
			cancel()
			return wrap(errBad)
		})
		if err != errBad {
			t.Errorf("non-retryable error after cancel: got %T %v, want the error itself", err, err)
		}
	}
}
