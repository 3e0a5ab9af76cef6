package breaker_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/rampart-go/rampart/breaker"
)

// A breaker for one node: two failures in a row open it, and from then on
// calls are rejected with an error matching breaker.ErrOpen. A cancelled call
// is Neutral and counts for nothing.
func Example() {
	b := breaker.New(breaker.Settings{
		Name:                "127.0.1.5",
		ConsecutiveFailures: 2,
		Timeout:             time.Minute,
		OnStateChange: func(c breaker.StateChange) {
			fmt.Printf("%s: %v -> %v after %d failures in a row\n",
				c.Name, c.From, c.To, c.Counts.ConsecutiveFailures)
		},
	})

	for _, outcome := range []breaker.Outcome{breaker.Failure, breaker.Neutral, breaker.Failure, breaker.Success} {
		done, err := b.Allow()
		if err != nil {
			fmt.Println("rejected:", err, "| is ErrOpen:", errors.Is(err, breaker.ErrOpen))
			continue
		}
		// ... make the call, then report how it went ...
		done(outcome)
		fmt.Println("call:", outcome)
	}
	fmt.Println("state:", b.State())

	// Output:
	// call: failure
	// call: neutral
	// 127.0.1.5: closed -> open after 2 failures in a row
	// call: failure
	// rejected: breaker: open: 127.0.1.5 | is ErrOpen: true
	// state: open
}

// A group keeps one breaker per node; a failover step skips nodes whose
// breaker is open.
func ExampleGroup() {
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Minute}, 100)

	done, _ := g.Get("127.0.1.5").Allow()
	done(breaker.Failure) // the primary fails once and its breaker opens

	for _, node := range []string{"127.0.1.5", "127.0.1.6", "127.0.1.7"} {
		if g.Get(node).State() == breaker.StateOpen {
			fmt.Println("skip", node)
			continue
		}
		fmt.Println("use", node)
		break
	}
	// Output:
	// skip 127.0.1.5
	// use 127.0.1.6
}

func ExampleBreaker_Execute() {
	b := breaker.New(breaker.Settings{Name: "n1"})
	err := b.Execute(func() (breaker.Outcome, error) {
		return breaker.Success, nil // the call succeeded
	})
	fmt.Println(err, b.Counts().TotalSuccesses)
	// Output: <nil> 1
}
