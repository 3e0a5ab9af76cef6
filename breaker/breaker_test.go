package breaker_test

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
)

// waitState polls b.State until it reports want. gobreaker has no clock, so
// tests that need an open period to end use a short Timeout and wait here;
// the deadline only guards against a hung test.
func waitState(t *testing.T, b *breaker.Breaker, want breaker.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %q: state %v, waited for %v", b.Name(), b.State(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// run drives b through a script of space-separated steps:
//
//	"+"          Allow must admit the call; its done is queued
//	"-"          Allow must reject with an *OpenError matching ErrOpen
//	"S" "F" "N"  finish the oldest queued call with Success, Failure or Neutral
//	"s" "f" "n"  Allow must admit a call, which ends at once with that outcome
//	"~"          wait until the breaker is half-open
func run(t *testing.T, b *breaker.Breaker, script string) {
	t.Helper()
	var queued []func(breaker.Outcome)
	outcome := map[byte]breaker.Outcome{'s': breaker.Success, 'f': breaker.Failure, 'n': breaker.Neutral}
	for i, step := range strings.Fields(script) {
		switch step {
		case "+", "s", "f", "n":
			done, err := b.Allow()
			if err != nil {
				t.Fatalf("step %d %q: Allow rejected: %v (state %v)", i, step, err, b.State())
			}
			if step == "+" {
				queued = append(queued, done)
			} else {
				done(outcome[step[0]])
			}
		case "-":
			done, err := b.Allow()
			if err == nil {
				done(breaker.Neutral)
				t.Fatalf("step %d: Allow admitted, want rejection (state %v)", i, b.State())
			}
			if !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("step %d: error %v does not match ErrOpen", i, err)
			}
		case "S", "F", "N":
			if len(queued) == 0 {
				t.Fatalf("step %d: no call in flight", i)
			}
			done := queued[0]
			queued = queued[1:]
			done(outcome[strings.ToLower(step)[0]])
		case "~":
			waitState(t, b, breaker.StateHalfOpen)
		default:
			t.Fatalf("bad step %q", step)
		}
	}
	for _, done := range queued {
		done(breaker.Neutral)
	}
}

func rep(step string, n int) string { return strings.TrimSpace(strings.Repeat(step+" ", n)) }

func TestTrip(t *testing.T) {
	tests := []struct {
		name   string
		s      breaker.Settings
		script string
		want   breaker.State
	}{
		{"default trips on the fifth consecutive failure", breaker.Settings{}, rep("f", 5), breaker.StateOpen},
		{"default stays closed after four failures", breaker.Settings{}, rep("f", 4), breaker.StateClosed},
		{"consecutive failures", breaker.Settings{ConsecutiveFailures: 3}, "f f f", breaker.StateOpen},
		{"a success breaks the run", breaker.Settings{ConsecutiveFailures: 3}, "f f s f f", breaker.StateClosed},
		{"neutral outcomes do not break the run", breaker.Settings{ConsecutiveFailures: 3}, "f n f n n f", breaker.StateOpen},
		{"neutral outcomes never trip", breaker.Settings{ConsecutiveFailures: 1}, rep("n", 50), breaker.StateClosed},
		{"in-flight calls do not count", breaker.Settings{ConsecutiveFailures: 2}, "+ + + f", breaker.StateClosed},
		{"open rejects", breaker.Settings{ConsecutiveFailures: 1}, "f - -", breaker.StateOpen},
		{"calls in flight at the trip are not counted after it",
			breaker.Settings{ConsecutiveFailures: 2}, "+ + f f S S", breaker.StateOpen},
		{"ratio reached at the minimum",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10},
			"s f s f s f s f s f", breaker.StateOpen},
		{"ratio not checked below the minimum",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10},
			rep("f", 9), breaker.StateClosed},
		{"ratio below the threshold",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10},
			"s s f s s f s f s f s s", breaker.StateClosed},
		{"neutral outcomes are not in the ratio",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10},
			rep("n", 20) + " " + rep("s", 5) + " " + rep("f", 4), breaker.StateClosed},
		{"neutral outcomes are not in the ratio, then it trips",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 0.5, MinRequests: 10},
			rep("n", 20) + " " + rep("s", 5) + " " + rep("f", 5), breaker.StateOpen},
		{"ratio above 1 is disabled",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 1.5, MinRequests: 1},
			rep("f", 30), breaker.StateClosed},
		{"default minimum is 10",
			breaker.Settings{ConsecutiveFailures: 100, FailureRatio: 0.1},
			"s s s s s s s s s f", breaker.StateOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.Timeout = time.Hour
			b := breaker.New(tt.s)
			run(t, b, tt.script)
			if got := b.State(); got != tt.want {
				t.Fatalf("state = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHalfOpen(t *testing.T) {
	tests := []struct {
		name   string
		probes uint32
		script string        // runs after the breaker tripped and turned half-open
		want   breaker.State // the state the last event moved to
	}{
		{"one successful probe closes", 0, "s", breaker.StateClosed},
		{"a failed probe reopens", 0, "f", breaker.StateOpen},
		{"default cap is one probe", 0, "+ - S", breaker.StateClosed},
		{"a neutral probe frees its slot", 1, "+ - N + - S", breaker.StateClosed},
		{"a neutral probe neither closes nor opens", 1, "n n n", breaker.StateHalfOpen},
		{"cap of three", 3, "+ + + - - N + - S S S", breaker.StateClosed},
		{"a successful probe keeps its slot", 2, "+ S + - S", breaker.StateClosed},
		{"successes needed equal the cap", 3, "s s", breaker.StateHalfOpen},
		{"a failure after successes reopens", 3, "s s f", breaker.StateOpen},
		{"a failure with probes in flight reopens and their outcomes are dropped", 3,
			"+ + + F S S", breaker.StateOpen},
		{"reopened breaker half-opens again", 1, "f ~ s", breaker.StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The open period is short, so a reopened breaker may turn
			// half-open again as soon as it is looked at: the test checks
			// the last state change instead of calling State.
			var last breaker.StateChange
			b := breaker.New(breaker.Settings{
				Name:                "n1",
				ConsecutiveFailures: 1,
				Timeout:             5 * time.Millisecond,
				TimeoutJitter:       -1,
				MaxProbes:           tt.probes,
				OnStateChange:       func(c breaker.StateChange) { last = c },
			})
			run(t, b, "f ~")
			run(t, b, tt.script)
			if last.To != tt.want {
				t.Fatalf("last change %v -> %v, want -> %v", last.From, last.To, tt.want)
			}
		})
	}
}

func TestStaleOutcomesDoNotCount(t *testing.T) {
	b := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: 5 * time.Millisecond, TimeoutJitter: -1})
	old1, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	old2, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, "f")
	old1(breaker.Success) // finished while open: dropped
	waitState(t, b, breaker.StateHalfOpen)
	old2(breaker.Failure) // admitted while closed, finished in half-open: dropped
	if got := b.State(); got != breaker.StateHalfOpen {
		t.Fatalf("state = %v, want half-open", got)
	}
	run(t, b, "s")
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state = %v, want closed", got)
	}
}

func TestRollingWindowForgetsOldFailures(t *testing.T) {
	const window = 40 * time.Millisecond
	b := breaker.New(breaker.Settings{ConsecutiveFailures: 3, Window: window, WindowBuckets: 4, Timeout: time.Hour})
	run(t, b, "f f")
	if c := b.Counts(); c.ConsecutiveFailures != 2 {
		t.Fatalf("counts = %+v, want 2 consecutive failures", c)
	}
	time.Sleep(2 * window) // a lower bound: once the window has passed, both failures are gone
	run(t, b, "f f")
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state = %v, want closed", got)
	}
	run(t, b, "f")
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state = %v, want open", got)
	}
}

func TestCounts(t *testing.T) {
	b := breaker.New(breaker.Settings{Timeout: time.Hour})
	run(t, b, "s s f n n")
	inflight, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	defer inflight(breaker.Neutral)
	want := breaker.Counts{Requests: 6, TotalSuccesses: 2, TotalFailures: 1, TotalNeutral: 2, ConsecutiveFailures: 1}
	if got := b.Counts(); got != want {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
}

func TestRejectionErrors(t *testing.T) {
	tests := []struct {
		name      string
		settings  breaker.Settings
		script    string
		wantState breaker.State
		wantMsg   string
	}{
		{"open, named", breaker.Settings{Name: "127.0.1.5", ConsecutiveFailures: 1, Timeout: time.Hour},
			"f", breaker.StateOpen, "breaker: open: 127.0.1.5"},
		{"open, unnamed", breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour},
			"f", breaker.StateOpen, "breaker: open"},
		{"half-open, probe cap", breaker.Settings{Name: "n2", ConsecutiveFailures: 1, Timeout: time.Millisecond},
			"f ~ +", breaker.StateHalfOpen, "breaker: half-open, too many probes: n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := breaker.New(tt.settings)
			var held []func(breaker.Outcome)
			for _, step := range strings.Fields(tt.script) {
				switch step {
				case "+":
					done, err := b.Allow()
					if err != nil {
						t.Fatal(err)
					}
					held = append(held, done)
				default:
					run(t, b, step)
				}
			}
			defer func() {
				for _, d := range held {
					d(breaker.Neutral)
				}
			}()
			done, err := b.Allow()
			if err == nil {
				done(breaker.Neutral)
				t.Fatal("Allow admitted")
			}
			if done != nil {
				t.Error("done is not nil on rejection")
			}
			if !errors.Is(err, breaker.ErrOpen) {
				t.Errorf("errors.Is(%v, ErrOpen) = false", err)
			}
			var oe *breaker.OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("errors.As(%T, *OpenError) = false", err)
			}
			if oe.Name != tt.settings.Name || oe.State != tt.wantState {
				t.Errorf("OpenError = {%q %v}, want {%q %v}", oe.Name, oe.State, tt.settings.Name, tt.wantState)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantMsg)
			}
			ran := false
			if err := b.Execute(func() (breaker.Outcome, error) { ran = true; return breaker.Success, nil }); !errors.Is(err, breaker.ErrOpen) {
				t.Errorf("Execute error = %v, want ErrOpen", err)
			}
			if ran {
				t.Error("Execute ran fn while rejecting")
			}
		})
	}
	if !strings.HasPrefix(breaker.ErrOpen.Error(), "breaker") {
		t.Errorf("ErrOpen text %q does not start with the package name", breaker.ErrOpen)
	}
}

func TestExecute(t *testing.T) {
	errBoom := errors.New("boom")
	b := breaker.New(breaker.Settings{ConsecutiveFailures: 2, Timeout: time.Hour})
	if err := b.Execute(func() (breaker.Outcome, error) { return breaker.Success, nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(func() (breaker.Outcome, error) { return breaker.Neutral, errBoom }); err != errBoom {
		t.Fatalf("err = %v, want fn's error", err)
	}
	if err := b.Execute(func() (breaker.Outcome, error) { return breaker.Failure, errBoom }); err != errBoom {
		t.Fatalf("err = %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want the panic re-raised", r)
			}
		}()
		_ = b.Execute(func() (breaker.Outcome, error) { panic("kaboom") })
	}()
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state = %v, want open (the panic counts as a failure)", got)
	}
}

func TestOpenPeriodLastsAtLeastTimeout(t *testing.T) {
	for _, jitter := range []float64{-1, 0, 1} {
		const timeout = 15 * time.Millisecond
		b := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: timeout, TimeoutJitter: jitter})
		start := time.Now() // before the trip, so elapsed is a lower bound of the open period
		run(t, b, "f")
		waitState(t, b, breaker.StateHalfOpen)
		if elapsed := time.Since(start); elapsed < timeout {
			t.Errorf("jitter %v: half-open after %v, before the %v timeout", jitter, elapsed, timeout)
		}
	}
}

func TestNameAndStrings(t *testing.T) {
	if got := breaker.New(breaker.Settings{Name: "x"}).Name(); got != "x" {
		t.Errorf("Name() = %q", got)
	}
	for s, want := range map[breaker.State]string{
		breaker.StateClosed: "closed", breaker.StateHalfOpen: "half-open", breaker.StateOpen: "open", 9: "unknown",
	} {
		if s.String() != want {
			t.Errorf("State(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
	for o, want := range map[breaker.Outcome]string{
		breaker.Success: "success", breaker.Failure: "failure", breaker.Neutral: "neutral", 9: "neutral",
	} {
		if o.String() != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, o.String(), want)
		}
	}
	// Out-of-range outcomes count as neutral.
	b := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour})
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(breaker.Outcome(9))
	if c := b.Counts(); c.TotalNeutral != 1 || b.State() != breaker.StateClosed {
		t.Fatalf("counts %+v, state %v", c, b.State())
	}
}

// recorder collects state changes; it checks that it is never called
// concurrently for one breaker.
type recorder struct {
	mu     sync.Mutex
	events []breaker.StateChange
	inside atomic.Int32
	t      *testing.T
}

func (r *recorder) record(c breaker.StateChange) {
	if n := r.inside.Add(1); n != 1 {
		r.t.Errorf("OnStateChange called concurrently (%d at once)", n)
	}
	runtime.Gosched()
	r.mu.Lock()
	r.events = append(r.events, c)
	r.mu.Unlock()
	r.inside.Add(-1)
}

func (r *recorder) take() []breaker.StateChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func TestStateChangeEvents(t *testing.T) {
	rec := &recorder{t: t}
	b := breaker.New(breaker.Settings{
		Name:                "n1",
		ConsecutiveFailures: 2,
		MaxProbes:           2,
		Timeout:             5 * time.Millisecond,
		TimeoutJitter:       -1,
		OnStateChange:       rec.record,
	})
	ch := func(from, to breaker.State, c breaker.Counts) breaker.StateChange {
		return breaker.StateChange{Name: "n1", From: from, To: to, Counts: c}
	}
	steps := []struct {
		script string
		want   []breaker.StateChange
	}{
		{"s n f", nil},
		// Delivered before the done that tripped returned, with the counts
		// that tripped it.
		{"f", []breaker.StateChange{ch(breaker.StateClosed, breaker.StateOpen, breaker.Counts{
			Requests: 4, TotalSuccesses: 1, TotalFailures: 2, TotalNeutral: 1, ConsecutiveFailures: 2})}},
		{"~", []breaker.StateChange{ch(breaker.StateOpen, breaker.StateHalfOpen, breaker.Counts{})}},
		{"+ + N + S S", []breaker.StateChange{ch(breaker.StateHalfOpen, breaker.StateClosed, breaker.Counts{
			Requests: 3, TotalSuccesses: 2, TotalNeutral: 1, ConsecutiveSuccesses: 2})}},
		{"f f ~ s f", []breaker.StateChange{
			ch(breaker.StateClosed, breaker.StateOpen, breaker.Counts{Requests: 2, TotalFailures: 2, ConsecutiveFailures: 2}),
			ch(breaker.StateOpen, breaker.StateHalfOpen, breaker.Counts{}),
			ch(breaker.StateHalfOpen, breaker.StateOpen, breaker.Counts{
				Requests: 2, TotalSuccesses: 1, TotalFailures: 1, ConsecutiveFailures: 1}),
		}},
	}
	for i, st := range steps {
		run(t, b, st.script)
		got := rec.take()
		if len(got) != len(st.want) {
			t.Fatalf("step %d %q: events %+v, want %+v", i, st.script, got, st.want)
		}
		for j := range got {
			if got[j] != st.want[j] {
				t.Errorf("step %d %q: event %d = %+v, want %+v", i, st.script, j, got[j], st.want[j])
			}
		}
	}
}

func TestCallbackMayCallBreaker(t *testing.T) {
	var b *breaker.Breaker
	var seen []string
	var closedSeen breaker.State = 99
	b = breaker.New(breaker.Settings{
		ConsecutiveFailures: 1,
		Timeout:             5 * time.Millisecond,
		TimeoutJitter:       -1,
		OnStateChange: func(c breaker.StateChange) {
			// Each of these takes gobreaker's lock: a deadlock here would
			// mean the callback runs under it.
			st := b.State()
			_ = b.Counts()
			if done, err := b.Allow(); err == nil {
				done(breaker.Neutral)
			}
			seen = append(seen, c.From.String()+">"+c.To.String())
			if c.To == breaker.StateClosed {
				closedSeen = st
			}
		},
	})
	run(t, b, "f ~ s")
	want := "closed>open open>half-open half-open>closed"
	if got := strings.Join(seen, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if closedSeen != breaker.StateClosed {
		t.Fatalf("State() inside the callback for the change to closed = %v", closedSeen)
	}
}

func TestEventsInOrderUnderConcurrency(t *testing.T) {
	var (
		mu     sync.Mutex
		events []breaker.StateChange
		inside atomic.Int32
	)
	b := breaker.New(breaker.Settings{
		ConsecutiveFailures: 1,
		MaxProbes:           2,
		Timeout:             100 * time.Microsecond,
		TimeoutJitter:       -1,
		OnStateChange: func(c breaker.StateChange) {
			if n := inside.Add(1); n != 1 {
				t.Errorf("OnStateChange called concurrently (%d at once)", n)
			}
			mu.Lock()
			events = append(events, c)
			mu.Unlock()
			runtime.Gosched()
			inside.Add(-1)
		},
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				done, err := b.Allow()
				if err != nil {
					_ = b.State()
					runtime.Gosched()
					continue
				}
				switch (g + i) % 3 {
				case 0:
					done(breaker.Failure)
				case 1:
					done(breaker.Success)
				default:
					done(breaker.Neutral)
				}
			}
		}()
	}
	wg.Wait()
	state := b.State() // may deliver one more event, so before locking mu
	mu.Lock()
	defer mu.Unlock()
	if len(events) == 0 {
		t.Fatal("no state changes")
	}
	prev := breaker.StateClosed
	for i, ev := range events {
		if ev.From != prev || ev.From == ev.To {
			t.Fatalf("event %d: %v -> %v after %v: out of order", i, ev.From, ev.To, prev)
		}
		prev = ev.To
	}
	if state != prev {
		t.Fatalf("last event says %v, state is %v", prev, state)
	}
}

func TestProbeCapUnderConcurrency(t *testing.T) {
	for _, probes := range []uint32{1, 3} {
		b := breaker.New(breaker.Settings{
			ConsecutiveFailures: 1,
			MaxProbes:           probes,
			Timeout:             time.Millisecond,
			TimeoutJitter:       -1,
		})
		run(t, b, "f ~")
		var inflight, maxInflight, admitted atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 500 {
					done, err := b.Allow()
					if err != nil {
						if !errors.Is(err, breaker.ErrOpen) {
							t.Errorf("rejection %v does not match ErrOpen", err)
						}
						runtime.Gosched()
						continue
					}
					admitted.Add(1)
					n := inflight.Add(1)
					for m := maxInflight.Load(); n > m && !maxInflight.CompareAndSwap(m, n); m = maxInflight.Load() {
					}
					runtime.Gosched()
					inflight.Add(-1) // before done: the slot is free once done returns
					done(breaker.Neutral)
				}
			}()
		}
		wg.Wait()
		if m := maxInflight.Load(); m > int32(probes) {
			t.Errorf("probes %d: %d probes in flight at once", probes, m)
		}
		if admitted.Load() <= int32(probes) {
			t.Errorf("probes %d: only %d probes admitted: neutral probes do not free their slot", probes, admitted.Load())
		}
		if got := b.State(); got != breaker.StateHalfOpen {
			t.Errorf("probes %d: state %v after neutral probes, want half-open", probes, got)
		}
	}
}

func TestRejectionAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	open := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour})
	run(t, open, "f")
	if n := testing.AllocsPerRun(200, func() {
		if _, err := open.Allow(); err == nil {
			t.Fatal("admitted")
		}
	}); n != 0 {
		t.Errorf("open rejection: %v allocs, want 0", n)
	}

	half := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Millisecond})
	run(t, half, "f ~")
	done, err := half.Allow()
	if err != nil {
		t.Fatal(err)
	}
	defer done(breaker.Neutral)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := half.Allow(); err == nil {
			t.Fatal("admitted")
		}
	}); n != 0 {
		t.Errorf("half-open rejection: %v allocs, want 0", n)
	}

	closed := breaker.New(breaker.Settings{Timeout: time.Hour})
	if n := testing.AllocsPerRun(200, func() {
		done, err := closed.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(breaker.Success)
	}); n > 2 {
		t.Errorf("success path: %v allocs, want at most 2 (gobreaker's done closure and ours)", n)
	}
}

// A failure share equal to FailureRatio trips the breaker, also where the
// product ratio×total rounds up in floating point (0.28×25 = 7.000…01).
func TestFailureRatioReachedExactly(t *testing.T) {
	for _, tc := range []struct {
		ratio               float64
		successes, failures int
	}{
		{0.28, 18, 7},  // 7/25
		{0.14, 43, 7},  // 7/50
		{0.56, 11, 14}, // 14/25
	} {
		n := uint32(tc.successes + tc.failures)
		b := breaker.New(breaker.Settings{
			ConsecutiveFailures: 1000, FailureRatio: tc.ratio, MinRequests: n,
			Window: time.Hour, Timeout: time.Hour,
		})
		for i := range n {
			done, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			if int(i) < tc.successes {
				done(breaker.Success)
			} else {
				done(breaker.Failure)
			}
		}
		if got := b.State(); got != breaker.StateOpen {
			t.Errorf("FailureRatio %v, %d/%d failures: state %v, want open", tc.ratio, tc.failures, n, got)
		}
	}
}
