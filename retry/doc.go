// Package retry runs an operation again after a retryable failure: a bounded
// number of attempts, capped exponential backoff with jitter (computed by
// github.com/cenkalti/backoff/v4), an optional per-attempt timeout, server
// pushback, and a retry budget shared per destination so that a fleet of
// clients cannot turn an outage into a retry storm.
//
// A [Policy] is the configuration and the loop; most callers want
// [Policy.Do]. A zero Policy is usable: three attempts, 100ms base delay,
// 5s cap, ±20% jitter, no attempt timeout, no budget.
//
// # Classifying errors
//
// The error the operation returns decides what happens next:
//
//   - nil: success, Do returns nil.
//   - an error wrapped by [Permanent], or whose chain holds a value with a
//     method Retryable() bool that returns false: not retried, Do returns
//     the error (without the Permanent wrapper).
//   - an error wrapped by [Pushback] with a negative delay: the server said
//     "do not retry"; treated as permanent.
//   - an error wrapped by [Pushback] with a delay d >= 0: retried after at
//     least d (capped by Policy.MaxPushback).
//   - any other error, including an attempt that hit its own AttemptTimeout:
//     retried.
//
// The first value in the chain (in errors.As order) that has a Retryable()
// method decides; Permanent and Pushback values have one.
//
// # Context
//
// If the caller's context is done, Do stops at once: before an attempt,
// after an attempt fails, or during a wait. Do never sleeps past the caller's
// deadline: if the next wait would end at or after it, Do returns at once
// with the last error. Such errors match ctx.Err() (or
// context.DeadlineExceeded) with errors.Is, as well as the last cause.
//
// # Errors
//
// When Do gives up after a retryable failure it returns an
// [*ExhaustedError] that carries the attempt count, the last cause and the
// reason: [ErrExhausted] (MaxAttempts reached), [ErrBudget] (the retry budget
// refused a retry) or a context error. errors.Is(err, ErrExhausted) holds for
// the first two.
//
// # Stability
//
// This package is new; its API may still change before rampart v1.
package retry
