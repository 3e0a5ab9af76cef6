package breaker_test

import (
	"errors"
	"testing"

	"github.com/rampart-go/rampart/breaker"
)

func TestAdmitCountsOutcomes(t *testing.T) {
	b := breaker.New(breaker.Settings{Name: "n1", ConsecutiveFailures: 2, MaxProbes: 1})
	tk, err := b.Admit()
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(breaker.Success)
	for range 2 {
		tk, err := b.Admit()
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(breaker.Failure)
	}
	if s := b.State(); s != breaker.StateOpen {
		t.Fatalf("state %v after two failures, want open", s)
	}
	tk, err = b.Admit()
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("Admit on an open breaker: %v, want ErrOpen", err)
	}
	var oe *breaker.OpenError
	if !errors.As(err, &oe) || oe.Name != "n1" || oe.State != breaker.StateOpen {
		t.Fatalf("rejection %#v", err)
	}
	tk.Done(breaker.Success) // the zero Ticket's Done does nothing
	if s := b.State(); s != breaker.StateOpen {
		t.Fatalf("the rejected Ticket's Done moved the breaker to %v", s)
	}
}

func TestAdmitNeutralFreesProbe(t *testing.T) {
	b := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: 1, TimeoutJitter: -1, MaxProbes: 1})
	tk, _ := b.Admit()
	tk.Done(breaker.Failure)
	waitState(t, b, breaker.StateHalfOpen)
	probe, err := b.Admit()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit(); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("second probe admitted: %v", err)
	}
	probe.Done(breaker.Neutral)
	probe, err = b.Admit()
	if err != nil {
		t.Fatalf("neutral probe did not free its slot: %v", err)
	}
	probe.Done(breaker.Success)
	if s := b.State(); s != breaker.StateClosed {
		t.Fatalf("state %v after a successful probe, want closed", s)
	}
}

func TestZeroTicket(t *testing.T) {
	var tk breaker.Ticket
	tk.Done(breaker.Success)
	tk.Done(breaker.Failure)
}

func TestAdmitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not checked under -race")
	}
	b := breaker.New(breaker.Settings{})
	n := testing.AllocsPerRun(1000, func() {
		tk, err := b.Admit()
		if err != nil {
			t.Fatal(err)
		}
		tk.Done(breaker.Success)
	})
	if n > 1 {
		t.Fatalf("Admit+Done: %v allocs, want at most 1 (gobreaker's closure)", n)
	}
}

// BenchmarkAdmitSuccess is the admitted path of the value form: Admit, then
// Done(Success).
func BenchmarkAdmitSuccess(b *testing.B) {
	br := breaker.New(breaker.Settings{})
	b.ReportAllocs()
	for b.Loop() {
		tk, err := br.Admit()
		if err != nil {
			b.Fatal(err)
		}
		tk.Done(breaker.Success)
	}
}

// Done clears its Ticket: a deferred Done after the real one does nothing,
// and without the real one (a panic) it frees the half-open probe slot.
func TestTicketDeferredDone(t *testing.T) {
	b := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: 1, TimeoutJitter: -1, MaxProbes: 1})
	func() {
		tk, _ := b.Admit()
		defer tk.Done(breaker.Neutral)
		tk.Done(breaker.Failure)
	}()
	if c := b.Counts(); c.TotalNeutral != 0 {
		t.Fatalf("the deferred Done after Done recorded an outcome: %+v", c)
	}
	waitState(t, b, breaker.StateHalfOpen)
	func() {
		defer func() { _ = recover() }()
		probe, _ := b.Admit()
		defer probe.Done(breaker.Neutral)
		panic("the call panics")
	}()
	probe, err := b.Admit()
	if err != nil {
		t.Fatalf("the panicked probe kept its slot: %v", err)
	}
	probe.Done(breaker.Success)
}
