package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/rampart-go/rampart/retry"
)

func TestBudgetRefusesUnderFailureBurst(t *testing.T) {
	clk := newAutoClock()
	b := retry.NewBudget(retry.BudgetConfig{Ratio: 0.1, MinRetries: 5, Window: time.Hour}, retry.WithClock(clk))
	// Tiny delays so the whole burst stays inside the window.
	p := retry.NewPolicy(retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Budget: b},
		retry.WithClock(clk))
	const calls = 100
	refused := 0
	for range calls {
		err := p.Do(context.Background(), func(context.Context, retry.Attempt) error { return errBoom })
		if !errors.Is(err, errBoom) || !errors.Is(err, retry.ErrExhausted) {
			t.Fatalf("err = %v, want exhausted wrapping the cause", err)
		}
		if errors.Is(err, retry.ErrBudget) {
			refused++
			var ee *retry.ExhaustedError
			if !errors.As(err, &ee) || ee.Attempts < 1 || ee.Last != errBoom {
				t.Fatalf("budget error %v lacks count or cause", err)
			}
		}
	}
	st := b.Stats()
	// Without a budget: 200 retries. With it: at most 5 + 10% of 100 calls.
	if st.Deposits != calls || st.Retries > 5+calls/10 || st.Retries < 5 {
		t.Fatalf("stats = %+v, want 100 deposits and 5..15 retries", st)
	}
	if st.Refused == 0 || int(st.Refused) != refused {
		t.Fatalf("refused: stats %d, seen %d", st.Refused, refused)
	}
}

func TestBudgetFloorAndRatio(t *testing.T) {
	clk := newManualClock()
	b := retry.NewBudget(retry.BudgetConfig{Ratio: 0.5, MinRetries: 2, Window: 10 * time.Second}, retry.WithClock(clk))
	// Floor only.
	if !b.Withdraw() || !b.Withdraw() || b.Withdraw() {
		t.Fatal("floor of 2 retries not honoured")
	}
	// Four calls earn two more retries.
	for range 4 {
		b.Deposit()
	}
	if !b.Withdraw() || !b.Withdraw() || b.Withdraw() {
		t.Fatal("ratio 0.5 of 4 calls not honoured")
	}
	// After a full window everything has aged out: the floor is back.
	clk.Advance(10 * time.Second)
	if !b.Withdraw() || !b.Withdraw() || b.Withdraw() {
		t.Fatal("window did not age out old retries")
	}
	st := b.Stats()
	if st.Deposits != 4 || st.Retries != 6 || st.Refused != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestBudgetSlidingWindow(t *testing.T) {
	clk := newManualClock()
	b := retry.NewBudget(retry.BudgetConfig{Ratio: 1, MinRetries: -1, Window: 10 * time.Second}, retry.WithClock(clk))
	if b.Withdraw() {
		t.Fatal("no floor and no calls must refuse")
	}
	b.Deposit()
	clk.Advance(5 * time.Second)
	b.Deposit()
	clk.Advance(5 * time.Second) // the first deposit ages out, the second stays
	if !b.Withdraw() || b.Withdraw() {
		t.Fatal("want exactly one retry from the deposit still in the window")
	}
}

func TestZeroBudgetUsable(t *testing.T) {
	var b retry.Budget
	for range retry.DefaultBudgetMinRetries {
		if !b.Withdraw() {
			t.Fatal("zero budget must grant the default floor")
		}
	}
	if b.Withdraw() {
		t.Fatal("zero budget granted past its floor with no calls")
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := retry.NewBudget(retry.BudgetConfig{Ratio: 0.5, MinRetries: -1, Window: time.Hour})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				b.Deposit()
				b.Withdraw()
			}
		}()
	}
	wg.Wait()
	st := b.Stats()
	if st.Deposits != 1600 || st.Retries+st.Refused != 1600 || st.Retries > 800 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestBudgetsPerDestination(t *testing.T) {
	clk := newAutoClock()
	bs := retry.NewBudgets(retry.BudgetConfig{Ratio: -1, MinRetries: 1, Window: time.Hour}, 2, retry.WithClock(clk))
	a, a2, b := bs.Get("10.0.0.1:80"), bs.Get("10.0.0.1:80"), bs.Get("10.0.0.2:80")
	if a != a2 || a == b {
		t.Fatal("Get must return one budget per destination")
	}
	over1, over2 := bs.Get("10.0.0.3:80"), bs.Get("10.0.0.4:80")
	if over1 != over2 || over1 == a || over1 == b || bs.Len() != 2 {
		t.Fatalf("past the bound destinations must share the overflow budget (len %d)", bs.Len())
	}
	// Per-call budgets: exhausting a's floor leaves b's intact.
	p := retry.NewPolicy(retry.Policy{MaxAttempts: 3, BaseDelay: time.Millisecond}, retry.WithClock(clk))
	fail := func(context.Context, retry.Attempt) error { return errBoom }
	if err := p.DoWithBudget(context.Background(), a, fail); !errors.Is(err, retry.ErrBudget) {
		t.Fatalf("err = %v, want ErrBudget after one retry", err)
	}
	if st := a.Stats(); st.Retries != 1 || st.Refused != 1 {
		t.Fatalf("a stats = %+v", st)
	}
	if st := b.Stats(); st.Retries != 0 || st.Deposits != 0 {
		t.Fatalf("b touched: %+v", st)
	}
	var zero retry.Budgets
	if zero.Get("x") == nil || zero.Len() != 1 {
		t.Fatal("zero Budgets must be usable")
	}
}

func TestDoWithNilBudgetUsesPolicyBudget(t *testing.T) {
	b := retry.NewBudget(retry.BudgetConfig{})
	p := retry.Policy{Budget: b}
	if err := p.DoWithBudget(context.Background(), nil, func(context.Context, retry.Attempt) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Deposits != 1 {
		t.Fatal("nil per-call budget must fall back to Policy.Budget")
	}
}

func TestBudgetsConcurrentGet(t *testing.T) {
	bs := retry.NewBudgets(retry.BudgetConfig{}, 16)
	var wg sync.WaitGroup
	got := make([][]*retry.Budget, 4)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 32 {
				got[g] = append(got[g], bs.Get(fmt.Sprint("dest-", i)))
			}
		}()
	}
	wg.Wait()
	for g := 1; g < len(got); g++ {
		for i := range got[g] {
			if got[g][i] != got[0][i] {
				t.Fatalf("goroutines saw different budgets for dest-%d", i)
			}
		}
	}
	if bs.Len() != 16 {
		t.Fatalf("Len = %d, want the bound 16", bs.Len())
	}
}

// TestBudgetHugeFloor: a floor too large to count up to is no limit; it
// used to overflow and refuse every retry.
func TestBudgetHugeFloor(t *testing.T) {
	for _, floor := range []int{math.MaxInt, math.MaxInt / 100, 1 << 50} {
		b := retry.NewBudget(retry.BudgetConfig{MinRetries: floor, Ratio: -1})
		for i := range 100 {
			if !b.Withdraw() {
				t.Fatalf("MinRetries %d: retry %d refused", floor, i+1)
			}
		}
	}
}

// The budget keeps the ratio as given: a third of 3 calls is one retry,
// and ratios finer than a thousandth still grant retries.
func TestBudgetRatioExact(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		calls int
		want  int // floor(Ratio × calls), no MinRetries floor
	}{
		{1.0 / 3, 3, 1},
		{0.29, 100, 29}, // 0.29×100 is 28.999… in floating point
		{0.0005, 10000, 5},
		{0.0001, 10000, 1},
	} {
		b := retry.NewBudget(retry.BudgetConfig{Ratio: tc.ratio, MinRetries: -1, Window: time.Hour})
		for range tc.calls {
			b.Deposit()
		}
		got := 0
		for b.Withdraw() {
			got++
		}
		if got != tc.want {
			t.Errorf("Ratio %v, %d calls: %d retries granted, want %d", tc.ratio, tc.calls, got, tc.want)
		}
	}
}
