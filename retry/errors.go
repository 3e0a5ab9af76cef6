package retry

import (
	"errors"
	"strconv"
	"time"
)

// ErrExhausted is the reason Do gives when it used all of Policy.MaxAttempts.
// errors.Is(err, ErrExhausted) also holds when the retry budget refused a
// retry (see [ErrBudget]), but not when the caller's context stopped the loop.
var ErrExhausted = errors.New("retry: attempts exhausted")

// ErrBudget is the reason Do gives when the retry [Budget] refused a retry.
// The returned [*ExhaustedError] matches both ErrBudget and [ErrExhausted].
var ErrBudget = errors.New("retry: retry budget exhausted")

// ExhaustedError is returned by Do when it stops after a retryable failure.
// It unwraps to Reason and to Last, so errors.Is matches the last cause as
// well as ErrExhausted, ErrBudget or the context error.
type ExhaustedError struct {
	// Attempts is how many attempts ran, including the first.
	Attempts int
	// Last is the error of the last attempt, without a Permanent or Pushback
	// wrapper.
	Last error
	// Reason says why the loop stopped: ErrExhausted, ErrBudget,
	// context.Canceled or context.DeadlineExceeded (the caller's context is
	// done, or the next wait would have ended at or after its deadline).
	Reason error

	early bool // the wait would have passed the deadline; ctx was still alive
}

// Error describes the reason, the attempt count and the last cause.
func (e *ExhaustedError) Error() string {
	var why string
	switch {
	case e.Reason == nil:
		why = ErrExhausted.Error()
	case e.Reason == ErrExhausted || e.Reason == ErrBudget:
		why = e.Reason.Error()
	case e.early:
		why = "retry: next wait would pass the context deadline"
	default:
		why = "retry: " + e.Reason.Error()
	}
	s := why + " after " + strconv.Itoa(e.Attempts) + " attempt"
	if e.Attempts != 1 {
		s += "s"
	}
	if e.Last != nil {
		s += ": " + e.Last.Error()
	}
	return s
}

// Unwrap returns Reason and Last (those that are not nil).
func (e *ExhaustedError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Reason != nil {
		errs = append(errs, e.Reason)
	}
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	return errs
}

// Is reports whether target is ErrExhausted and the loop gave up for lack of
// attempts or budget (Reason ErrExhausted, ErrBudget or nil).
func (e *ExhaustedError) Is(target error) bool {
	return target == ErrExhausted && (e.Reason == nil || e.Reason == ErrExhausted || e.Reason == ErrBudget)
}

// retryabler is the interface an error (anywhere in its chain) implements to
// say whether it may be retried.
type retryabler interface {
	error
	Retryable() bool
}

// Permanent wraps err so that Do does not retry it; Do returns err itself.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Retryable() bool { return false }

// Pushback wraps err with a delay the server asked for (Retry-After,
// grpc-retry-pushback-ms). If d >= 0 the error is retryable and the next wait
// is at least d, capped by Policy.MaxPushback; the backoff may still choose a
// longer wait. If d < 0 the server asked not to retry: Do returns err at once.
// Pushback(nil, d) is nil.
func Pushback(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &pushbackError{err: err, d: d}
}

type pushbackError struct {
	err error
	d   time.Duration
}

func (e *pushbackError) Error() string   { return e.err.Error() }
func (e *pushbackError) Unwrap() error   { return e.err }
func (e *pushbackError) Retryable() bool { return e.d >= 0 }

// classify reports whether err may be retried and the server pushback, if
// any (hasPB false when no Pushback wraps err).
func classify(err error) (retryable bool, pushback time.Duration, hasPB bool) {
	// errors.AsType, unlike errors.As, lets no target escape: classifying
	// a failed attempt allocates nothing.
	if r, ok := errors.AsType[retryabler](err); ok && !r.Retryable() {
		return false, 0, false
	}
	if pb, ok := errors.AsType[*pushbackError](err); ok && pb.d >= 0 {
		return true, pb.d, true
	}
	return true, 0, false
}

// strip removes Permanent and Pushback wrappers from the top of err.
func strip(err error) error {
	for {
		switch e := err.(type) {
		case *permanentError:
			err = e.err
		case *pushbackError:
			err = e.err
		default:
			return err
		}
	}
}
