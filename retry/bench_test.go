package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-go/rampart/retry"
)

func BenchmarkDoSuccess(b *testing.B) {
	p := &retry.Policy{}
	ctx := context.Background()
	n := 0
	op := func(context.Context, retry.Attempt) error { n++; return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoSuccessWithBudget(b *testing.B) {
	bs := retry.NewBudgets(retry.BudgetConfig{}, 0)
	bs.Get("127.0.0.1:80")
	p := &retry.Policy{}
	ctx := context.Background()
	op := func(context.Context, retry.Attempt) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.DoWithBudget(ctx, bs.Get("127.0.0.1:80"), op); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDoSuccessAttemptTimeout shows the cost of AttemptTimeout > 0:
// one context.WithTimeout per attempt.
func BenchmarkDoSuccessAttemptTimeout(b *testing.B) {
	p := &retry.Policy{AttemptTimeout: time.Second}
	ctx := context.Background()
	op := func(context.Context, retry.Attempt) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDoOneRetry is the failure path: backoff, timer and error values.
func BenchmarkDoOneRetry(b *testing.B) {
	p := retry.NewPolicy(retry.Policy{}, retry.WithClock(newAutoClock()))
	ctx := context.Background()
	op := func(_ context.Context, a retry.Attempt) error {
		if a.Number == 1 {
			return errBoom
		}
		return nil
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBudgetDepositWithdraw(b *testing.B) {
	bud := retry.NewBudget(retry.BudgetConfig{})
	b.ReportAllocs()
	for b.Loop() {
		bud.Deposit()
		bud.Withdraw()
	}
}

func BenchmarkBudgetDepositWithdrawParallel(b *testing.B) {
	bud := retry.NewBudget(retry.BudgetConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Deposit()
			bud.Withdraw()
		}
	})
}

func BenchmarkBudgetsGet(b *testing.B) {
	bs := retry.NewBudgets(retry.BudgetConfig{}, 0)
	bs.Get("127.0.0.1:80")
	b.ReportAllocs()
	for b.Loop() {
		bs.Get("127.0.0.1:80")
	}
}

func TestSuccessPathAllocatesNothing(t *testing.T) {
	p := &retry.Policy{Budget: retry.NewBudget(retry.BudgetConfig{})}
	bs := retry.NewBudgets(retry.BudgetConfig{}, 0)
	bs.Get("d")
	ctx := context.Background()
	op := func(context.Context, retry.Attempt) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = p.Do(ctx, op) }); n != 0 {
		t.Errorf("Do success path: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = p.DoWithBudget(ctx, bs.Get("d"), op) }); n != 0 {
		t.Errorf("DoWithBudget success path: %v allocs, want 0", n)
	}
	b := p.Budget
	if n := testing.AllocsPerRun(100, func() { b.Deposit(); b.Withdraw() }); n != 0 {
		t.Errorf("Deposit/Withdraw: %v allocs, want 0", n)
	}
}
