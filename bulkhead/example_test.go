package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-go/rampart/bulkhead"
)

func Example() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 2})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	first, _ := b.Acquire(ctx)
	second, _ := b.Acquire(ctx)
	_, err = b.Acquire(ctx) // no queue: rejected at once
	fmt.Println("third call:", err, errors.Is(err, bulkhead.ErrFull))

	first.Release()
	first.Release() // a second Release does nothing
	fmt.Println("in flight:", b.InFlight())
	second.Release()
	fmt.Println("in flight:", b.InFlight())
	// Output:
	// third call: bulkhead: full true
	// in flight: 1
	// in flight: 0
}

func ExampleBulkhead_Acquire() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	held, _ := b.TryAcquire()
	defer held.Release()

	// Every slot is held: this call queues, waits MaxWait, then gives up.
	_, err = b.Acquire(context.Background())
	fmt.Println(err)
	fmt.Println(errors.Is(err, bulkhead.ErrFull), errors.Is(err, bulkhead.ErrWaitTimeout))
	// Output:
	// bulkhead: full: max wait elapsed
	// true true
}

func ExampleBulkhead_Do() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 4})
	if err != nil {
		panic(err)
	}
	err = b.Do(context.Background(), func(context.Context) error {
		fmt.Println("running, in flight:", b.InFlight())
		return nil
	})
	fmt.Println("done:", err, "in flight:", b.InFlight())
	// Output:
	// running, in flight: 1
	// done: <nil> in flight: 0
}

func ExampleGroup() {
	g, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 100)
	if err != nil {
		panic(err)
	}
	p, _ := g.Get("127.0.1.5").TryAcquire()
	defer p.Release()

	_, okSame := g.Get("127.0.1.5").TryAcquire()
	other, okOther := g.Get("127.0.1.6").TryAcquire()
	defer other.Release()
	fmt.Println("same node:", okSame, "other node:", okOther)
	// Output:
	// same node: false other node: true
}

func ExampleAsRefusal() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1})
	if err != nil {
		panic(err)
	}
	held, _ := b.TryAcquire()
	defer held.Release()

	// An attempt with a 5 ms timeout queues for the held slot and runs out
	// of time: for a breaker per node, a refusal like any full bulkhead.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err = b.Acquire(ctx)
	err = bulkhead.AsRefusal(err)
	fmt.Println(err)
	fmt.Println(errors.Is(err, bulkhead.ErrFull), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// bulkhead: full: wait ended: context deadline exceeded
	// true true
}
