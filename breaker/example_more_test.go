package breaker_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/rampart-go/rampart/breaker"
)

// Allow is the two-step form: ask before the call, report its outcome after.
// Three failures in a row open this breaker; once its Timeout has passed it
// admits a probe, and a successful probe closes it again.
func ExampleBreaker_Allow() {
	b := breaker.New(breaker.Settings{
		Name:                "127.0.1.5",
		ConsecutiveFailures: 3,
		Timeout:             10 * time.Millisecond,
		TimeoutJitter:       -1, // no jitter, so the output is stable
	})
	call := func(outcome breaker.Outcome) {
		done, err := b.Allow()
		if err != nil {
			fmt.Println("rejected:", err, "| is ErrOpen:", errors.Is(err, breaker.ErrOpen))
			return
		}
		// ... make the call, then report how it went ...
		done(outcome)
		fmt.Println(outcome, "->", b.State())
	}

	call(breaker.Failure)
	call(breaker.Neutral) // say the caller gave up: it does not break the run
	call(breaker.Failure)
	call(breaker.Failure) // the third failure in a row opens the breaker
	call(breaker.Success) // not sent

	time.Sleep(20 * time.Millisecond) // more than the Timeout
	fmt.Println("after the timeout:", b.State())
	call(breaker.Success) // the probe
	// Output:
	// failure -> closed
	// neutral -> closed
	// failure -> closed
	// failure -> open
	// rejected: breaker: open: 127.0.1.5 | is ErrOpen: true
	// after the timeout: half-open
	// success -> closed
}
