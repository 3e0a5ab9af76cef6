package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-go/rampart/retry"
)

// A flaky operation fails twice, asks for a pushback once, then succeeds.
func Example() {
	p := &retry.Policy{
		MaxAttempts: 4,
		BaseDelay:   time.Millisecond,
		MaxDelay:    5 * time.Millisecond,
		Jitter:      -1, // no jitter, so the output is stable
		OnRetry: func(e retry.Event) {
			fmt.Printf("attempt %d failed (%v); waiting %v\n", e.Attempt, e.Err, e.Delay)
		},
	}
	err := p.Do(context.Background(), func(ctx context.Context, a retry.Attempt) error {
		switch a.Number {
		case 1:
			return errors.New("connection reset")
		case 2:
			return retry.Pushback(errors.New("overloaded"), 4*time.Millisecond)
		}
		fmt.Printf("attempt %d succeeded after waiting %v\n", a.Number, a.Waited)
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// attempt 1 failed (connection reset); waiting 1ms
	// attempt 2 failed (overloaded); waiting 4ms
	// attempt 3 succeeded after waiting 4ms
	// err: <nil>
}

// When every attempt fails, the error carries the count and the last cause.
func ExampleExhaustedError() {
	errUnavailable := errors.New("unavailable")
	p := &retry.Policy{MaxAttempts: 2, BaseDelay: time.Millisecond, Jitter: -1}
	err := p.Do(context.Background(), func(context.Context, retry.Attempt) error {
		return errUnavailable
	})
	var ee *retry.ExhaustedError
	fmt.Println(err)
	fmt.Println(errors.Is(err, retry.ErrExhausted), errors.Is(err, errUnavailable), errors.As(err, &ee) && ee.Attempts == 2)
	// Output:
	// retry: attempts exhausted after 2 attempts: unavailable
	// true true true
}

// A transport keeps one budget per destination and hands it to each call.
func ExampleBudgets() {
	budgets := retry.NewBudgets(retry.BudgetConfig{Ratio: 0.1, MinRetries: 1}, 0)
	p := &retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond}
	down := func(context.Context, retry.Attempt) error { return errors.New("node down") }

	err := p.DoWithBudget(context.Background(), budgets.Get("127.0.1.5:7000"), down)
	fmt.Println(err)
	fmt.Printf("%+v\n", budgets.Get("127.0.1.5:7000").Stats())
	// Output:
	// retry: retry budget exhausted after 2 attempts: node down
	// {Deposits:1 Retries:1 Refused:1}
}
