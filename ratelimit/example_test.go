package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/ratelimit"
)

func Example() {
	// One call per hour, two at once after a quiet spell, no waiting.
	l, err := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 2})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i := range 3 {
		fmt.Println("call", i, "->", l.Wait(ctx))
	}
	// Output:
	// call 0 -> <nil>
	// call 1 -> <nil>
	// call 2 -> ratelimit: limited
}

func ExampleLimiter_Wait() {
	// A token every 10ms; a call may wait up to a second for one.
	l, err := ratelimit.New(ratelimit.Config{Rate: rate.Every(10 * time.Millisecond), Burst: 1, MaxWait: time.Second})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	fmt.Println(l.Wait(ctx)) // the bucket's token
	fmt.Println(l.Wait(ctx)) // waits about 10ms for the next

	// A token an hour; a call may wait up to two hours, but not past its
	// context's deadline. The second token is due in an hour, after the
	// deadline: Wait rejects at once instead of waiting for nothing.
	hourly, err := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1, MaxWait: 2 * time.Hour})
	if err != nil {
		panic(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	fmt.Println(hourly.Wait(short))
	fmt.Println(hourly.Wait(short))
	// Output:
	// <nil>
	// <nil>
	// <nil>
	// ratelimit: limited
}

func ExampleNew_invalid() {
	_, err := ratelimit.New(ratelimit.Config{Rate: 10, Burst: 0})
	fmt.Println(err)
	// Output:
	// ratelimit: Burst must be >= 1, got 0
}

func ExampleGroup() {
	g, err := ratelimit.NewGroup(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1}, 1000)
	if err != nil {
		panic(err)
	}
	fmt.Println(g.Get("tenant-a").Allow(), g.Get("tenant-a").Allow(), g.Get("tenant-b").Allow())
	// Output:
	// true false true
}
