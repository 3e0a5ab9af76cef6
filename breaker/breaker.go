// Package breaker provides per-node circuit breakers and a bounded, keyed
// group of them, built on the two-step breaker of github.com/sony/gobreaker/v2.
//
// A [Breaker] is closed while calls succeed. It trips open after
// [Settings.ConsecutiveFailures] failures in a row, or when the share of
// failures over a rolling [Settings.Window] reaches [Settings.FailureRatio]
// once at least [Settings.MinRequests] outcomes were recorded. While open it
// rejects every call for [Settings.Timeout] plus a random jitter, then turns
// half-open and admits at most [Settings.MaxProbes] probes: one failed probe
// opens it again, MaxProbes successful probes close it.
//
// Every call ends in one of three outcomes: [Success], [Failure] or
// [Neutral]. A neutral outcome (the caller cancelled, another policy
// rejected the call, the request was bad) is never counted either way, and a
// neutral probe gives its half-open slot back.
//
// Every rejection matches [ErrOpen] with [errors.Is].
//
// The policy knows nothing of HTTP or gRPC; the transports (httpmw, grpcmw)
// translate their results into outcomes.
package breaker

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// ErrOpen is matched, through [errors.Is], by every error with which a
// breaker rejects a call: open, and half-open with all probe slots taken.
// The concrete error is an [*OpenError] naming the breaker.
var ErrOpen = errors.New("breaker: open")

// OpenError is the error a [Breaker] returns when it rejects a call. Each
// breaker preallocates its two OpenError values, so a rejection allocates
// nothing; they are shared between calls and must not be modified.
//
// errors.Is(err, ErrOpen) reports true for an *OpenError.
type OpenError struct {
	// Name is the name of the breaker that rejected the call.
	Name string
	// State is StateOpen when the breaker is open, or StateHalfOpen when
	// it is half-open and every probe slot is taken.
	State State

	msg string
}

// Error returns "breaker: open" or "breaker: half-open, too many probes",
// followed by ": " and the breaker's name when it has one.
func (e *OpenError) Error() string { return e.msg }

// Is reports whether target is [ErrOpen].
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

func newOpenError(name string, s State) *OpenError {
	msg := "breaker: open"
	if s == StateHalfOpen {
		msg = "breaker: half-open, too many probes"
	}
	if name != "" {
		msg += ": " + name
	}
	return &OpenError{Name: name, State: s, msg: msg}
}

// Outcome is the result of one call, as the breaker counts it.
type Outcome uint8

const (
	// Neutral is an outcome that counts neither as a success nor as a
	// failure: the caller cancelled, another policy rejected the call, the
	// request itself was at fault. A neutral half-open probe frees its
	// slot. Neutral is the zero Outcome, so an outcome never set moves
	// nothing; values above Failure are treated as Neutral.
	Neutral Outcome = iota
	// Success counts as a success.
	Success
	// Failure counts as a failure of the protected node.
	Failure
)

// String returns "neutral", "success" or "failure".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	default:
		return "neutral"
	}
}

// State is the state of a breaker.
type State uint8

const (
	// StateClosed admits every call and counts outcomes.
	StateClosed State = iota
	// StateHalfOpen admits a limited number of probes.
	StateHalfOpen
	// StateOpen rejects every call.
	StateOpen
)

// String returns "closed", "half-open", "open", or "unknown".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	default:
		return "unknown"
	}
}

// Counts holds the numbers of calls and outcomes a breaker has recorded in
// its current state (for a closed breaker, within the rolling window).
type Counts struct {
	// Requests is the number of calls admitted (including those still in
	// flight). In a StateChange out of half-open it is the number of
	// probes whose outcome was recorded; gobreaker does not expose the
	// probes still in flight.
	Requests uint32
	// TotalSuccesses is the number of Success outcomes.
	TotalSuccesses uint32
	// TotalFailures is the number of Failure outcomes.
	TotalFailures uint32
	// TotalNeutral is the number of Neutral outcomes.
	TotalNeutral uint32
	// ConsecutiveSuccesses is the number of successes since the last failure.
	ConsecutiveSuccesses uint32
	// ConsecutiveFailures is the number of failures since the last success.
	// Neutral outcomes do not break a run of failures.
	ConsecutiveFailures uint32
}

func fromGobreaker(c gobreaker.Counts) Counts {
	return Counts{
		Requests:             c.Requests,
		TotalSuccesses:       c.TotalSuccesses,
		TotalFailures:        c.TotalFailures,
		TotalNeutral:         c.TotalExclusions,
		ConsecutiveSuccesses: c.ConsecutiveSuccesses,
		ConsecutiveFailures:  c.ConsecutiveFailures,
	}
}

// StateChange describes one transition of a breaker.
type StateChange struct {
	// Name is the name of the breaker.
	Name string
	// From and To are the states before and after the transition.
	From, To State
	// Counts are the counts of the state that is left, as they stood at
	// the transition, including the outcome that caused it (gobreaker
	// clears them right after). Leaving StateOpen they are always zero.
	Counts Counts
}

// Settings configures a [Breaker]. The zero value is usable: every field
// documents the value its zero value stands for.
type Settings struct {
	// Name names the breaker in errors and events; in a Group it is
	// replaced by the key. Zero means no name.
	Name string

	// ConsecutiveFailures trips the breaker when this many failures
	// follow each other (neutral outcomes in between do not break the
	// run) within the rolling window. Zero means 5.
	ConsecutiveFailures uint32

	// FailureRatio trips the breaker when failures / (successes +
	// failures) within the rolling window reaches it, once MinRequests
	// outcomes were counted. Zero (or a value above 1) disables this rule.
	FailureRatio float64

	// MinRequests is the number of success and failure outcomes the
	// rolling window must hold before FailureRatio applies. Zero means 10.
	MinRequests uint32

	// Window is the length of the rolling window over which a closed
	// breaker counts outcomes. Zero (or negative) means 10s; it is rounded
	// down to whole buckets, and capped at 146 years.
	Window time.Duration

	// WindowBuckets is the number of buckets the window is split into;
	// the oldest bucket is dropped as time moves on. Zero (or negative)
	// means 10; more than 1000 means 1000 (gobreaker keeps every bucket in
	// memory, per breaker).
	WindowBuckets int

	// Timeout is how long the breaker stays open before it turns
	// half-open. Zero (or negative) means 10s.
	Timeout time.Duration

	// TimeoutJitter lengthens each open period by a random extra of up to
	// TimeoutJitter × Timeout, so a fleet of clients does not probe a node
	// in lockstep. Zero means 0.2; a negative value disables jitter.
	TimeoutJitter float64

	// MaxProbes caps the probes a half-open breaker admits. A probe holds
	// its slot until it ends with Failure (the breaker opens again) or
	// Neutral (the slot is freed); MaxProbes successful probes close the
	// breaker. Zero means 1.
	MaxProbes uint32

	// OnStateChange, if not nil, is called with every state change. It is
	// never called under the breaker's lock. Normally it runs on the
	// goroutine whose call (Allow or Admit, done or Ticket.Done, Execute or
	// State) caused the change, after the lock is released and before that
	// call returns. Events of one breaker are delivered one at a time, in
	// order: a change caused while another goroutine is delivering this
	// breaker's events (or from inside the callback itself) is delivered by
	// that goroutine, after the callback it is running returns. The callback
	// may call the breaker's methods. In a Group the callback is shared by
	// all breakers and must be safe for concurrent use.
	OnStateChange func(StateChange)
}

const (
	defaultConsecutiveFailures = 5
	defaultMinRequests         = 10
	defaultWindow              = 10 * time.Second
	defaultWindowBuckets       = 10
	maxWindowBuckets           = 1000
	maxWindow                  = time.Duration(math.MaxInt64 / 2)
	defaultTimeout             = 10 * time.Second
	defaultTimeoutJitter       = 0.2
	defaultMaxProbes           = 1
)

// Breaker is a circuit breaker for one node. Create it with [New]; the zero
// Breaker is not usable.
//
// Middleware wants [Breaker.Admit], which admits a call and returns the
// [Ticket] that records its outcome ([Breaker.Allow] is its closure form);
// [Breaker.Execute] wraps a function.
// [Breaker.State] is cheap and suits a failover step that skips open nodes.
//
// A Breaker is safe for concurrent use.
type Breaker struct {
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	name    string
	timeout time.Duration
	jitter  int64 // maximum extra open time, in nanoseconds
	epoch   time.Time

	consecutive uint32
	ratio       float64
	minRequests uint32
	onChange    func(StateChange)

	errOpen   *OpenError
	errProbes *OpenError

	// state mirrors gobreaker's state; openUntil is the end of the current
	// open period, in nanoseconds since epoch. Both are written under
	// gobreaker's lock and read anywhere.
	state     atomic.Uint32
	openUntil atomic.Int64

	// Guarded by gobreaker's lock: they are only touched from the
	// callbacks gobreaker runs while holding it.
	tripCounts  Counts
	probeCounts Counts

	// Event queue, filled under gobreaker's lock, drained outside it.
	hasEvents  atomic.Bool
	evMu       sync.Mutex
	events     []StateChange
	delivering bool
}

// Sentinel errors handed to gobreaker's done; IsExcluded and IsSuccessful
// map them back to outcomes.
var (
	errFailure = errors.New("breaker: failure outcome")
	errNeutral = errors.New("breaker: neutral outcome")
)

// New returns a closed breaker configured by s, with s's zero fields set to
// their documented defaults.
func New(s Settings) *Breaker {
	b := &Breaker{
		name:        s.Name,
		epoch:       time.Now(),
		consecutive: s.ConsecutiveFailures,
		ratio:       s.FailureRatio,
		minRequests: s.MinRequests,
		timeout:     s.Timeout,
		onChange:    s.OnStateChange,
	}
	if b.consecutive == 0 {
		b.consecutive = defaultConsecutiveFailures
	}
	if b.minRequests == 0 {
		b.minRequests = defaultMinRequests
	}
	if !(b.ratio > 0 && b.ratio <= 1) { // also rejects NaN
		b.ratio = 0
	}
	if b.timeout <= 0 {
		b.timeout = defaultTimeout
	}
	window, bucket := rollingWindow(s.Window, s.WindowBuckets)
	probes := s.MaxProbes
	if probes == 0 {
		probes = defaultMaxProbes
	}
	jitter := s.TimeoutJitter
	if jitter == 0 {
		jitter = defaultTimeoutJitter
	}
	b.jitter = maxJitter(b.timeout, jitter)
	b.errOpen = newOpenError(s.Name, StateOpen)
	b.errProbes = newOpenError(s.Name, StateHalfOpen)

	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          s.Name,
		MaxRequests:   probes,
		Interval:      window,
		BucketPeriod:  bucket,
		Timeout:       b.timeout,
		ReadyToTrip:   b.readyToTrip,
		OnStateChange: b.onStateChange,
		IsSuccessful:  b.isSuccessful,
		IsExcluded:    b.isExcluded,
	})
	return b
}

// rollingWindow returns the interval and bucket period to give gobreaker
// for a window of the given length and number of buckets (defaults for
// zero or negative values). gobreaker rounds its interval up to whole
// buckets, so the interval is a whole number of buckets, never longer than
// the window, and at most half the largest Duration (146 years), so that
// the rounding cannot overflow.
func rollingWindow(window time.Duration, buckets int) (interval, bucket time.Duration) {
	if window <= 0 {
		window = defaultWindow
	}
	window = min(window, maxWindow)
	if buckets <= 0 {
		buckets = defaultWindowBuckets
	}
	buckets = min(buckets, maxWindowBuckets)
	bucket = window / time.Duration(buckets)
	if bucket <= 0 {
		bucket = window
	}
	return window / bucket * bucket, bucket
}

// maxJitter returns the largest extra open time, in nanoseconds, for a
// timeout and a jitter fraction (negative or NaN: none).
func maxJitter(timeout time.Duration, jitter float64) int64 {
	if !(jitter > 0) {
		return 0
	}
	j := float64(timeout) * jitter
	if j >= float64(1<<62) {
		return 1 << 62
	}
	return int64(j)
}

// openFor returns the length of one open period: the timeout plus a random
// extra in [0, jitter].
func openFor(timeout time.Duration, jitter int64) int64 {
	d := int64(timeout)
	if jitter > 0 {
		d += rand.Int64N(jitter + 1)
	}
	return d
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.name }

// now returns the monotonic time since the breaker was created.
func (b *Breaker) now() int64 { return int64(time.Since(b.epoch)) }

// State returns the breaker's current state. It takes no lock except at the
// moment an open period has just ended, when it moves the breaker to
// half-open.
func (b *Breaker) State() State {
	s := State(b.state.Load())
	if s != StateOpen || b.now() < b.openUntil.Load() {
		return s
	}
	s = State(b.cb.State())
	b.flush()
	return s
}

// Counts returns the counts of the current state (see [Counts]), without
// the outcomes that have left the rolling window.
func (b *Breaker) Counts() Counts {
	if State(b.state.Load()) == StateClosed {
		b.cb.State() // moves gobreaker's rolling window on to now
	}
	return fromGobreaker(b.cb.Counts())
}

// Allow asks the breaker to admit one call. If it does, the caller must
// call done exactly once with the call's outcome; a half-open probe whose
// done is never called holds its slot for good. Calling done more than once
// is a bug. If the breaker rejects the call, done is nil and err is an
// [*OpenError] matching [ErrOpen].
//
// Allow is the closure form of [Breaker.Admit], which middleware should
// prefer: it costs one allocation less. A rejection allocates nothing. An
// admitted call costs two small allocations: gobreaker's own done closure
// (48 bytes), which its two-step API cannot avoid, and the 24-byte closure
// that maps an Outcome onto it.
func (b *Breaker) Allow() (done func(Outcome), err error) {
	gdone, err := b.admit()
	if err != nil {
		return nil, err
	}
	return func(o Outcome) { b.done(gdone, o) }, nil
}

// Ticket is the admission of one call by [Breaker.Admit]: the caller reports
// the call's outcome with [Ticket.Done].
//
// A Ticket is a small value. Done clears the Ticket it is called on, so a
// second Done on the same variable does nothing: a caller can write
//
//	tk, err := b.Admit()
//	...
//	defer tk.Done(breaker.Neutral) // if the call panics: free a probe slot
//	err = call()
//	tk.Done(outcome(err))
//
// A copy made before Done still holds the admission, and its Done records
// the outcome again, as if another call had ended; like a second call of
// Allow's done, that is a bug. The zero Ticket admits nothing and its Done
// does nothing.
type Ticket struct {
	b     *Breaker
	gdone func(error)
}

// Done records the outcome o of the admitted call (see [Outcome]) and
// clears t. A half-open probe whose Done is never called holds its slot for
// good. Done allocates nothing; on the zero Ticket it does nothing.
func (t *Ticket) Done(o Outcome) {
	if t.b == nil {
		return
	}
	b, gdone := t.b, t.gdone
	*t = Ticket{}
	b.done(gdone, o)
}

// Admit asks the breaker to admit one call, like [Breaker.Allow], and
// returns the admission as a [Ticket] value instead of a closure. If the
// breaker admits the call, the caller must call [Ticket.Done] once with the
// call's outcome. If it rejects the call, the Ticket is the zero Ticket and
// err is an [*OpenError] matching [ErrOpen].
//
// A rejection allocates nothing; an admitted call costs one allocation,
// gobreaker's own done closure (48 bytes), which its two-step API cannot
// avoid.
func (b *Breaker) Admit() (Ticket, error) {
	gdone, err := b.admit()
	if err != nil {
		return Ticket{}, err
	}
	return Ticket{b: b, gdone: gdone}, nil
}

// admit is Allow without the Outcome wrapper: it returns gobreaker's done.
func (b *Breaker) admit() (func(error), error) {
	if State(b.state.Load()) == StateOpen && b.now() < b.openUntil.Load() {
		return nil, b.errOpen
	}
	gdone, err := b.cb.Allow()
	if b.hasEvents.Load() {
		b.flush()
	}
	if err != nil {
		if err == gobreaker.ErrTooManyRequests {
			return nil, b.errProbes
		}
		return nil, b.errOpen
	}
	return gdone, nil
}

func (b *Breaker) done(gdone func(error), o Outcome) {
	// While open, every outstanding call was admitted before the breaker
	// tripped, and gobreaker would drop its outcome as stale. Skipping it
	// also keeps gobreaker from ending the open period before the jittered
	// deadline (it would turn half-open on any call after Timeout).
	if State(b.state.Load()) == StateOpen {
		return
	}
	var err error
	switch o {
	case Success:
	case Failure:
		err = errFailure
	default:
		err = errNeutral
	}
	gdone(err)
	if b.hasEvents.Load() {
		b.flush()
	}
}

// Execute runs fn if the breaker admits it and records the outcome fn
// returns; it returns fn's error, or an [*OpenError] matching [ErrOpen]
// without running fn. A panic in fn counts as a Failure and is re-raised.
// An admitted call costs one allocation (gobreaker's done closure).
func (b *Breaker) Execute(fn func() (Outcome, error)) error {
	gdone, err := b.admit()
	if err != nil {
		return err
	}
	finished := false
	defer func() {
		if !finished {
			b.done(gdone, Failure)
		}
	}()
	o, err := fn()
	finished = true
	b.done(gdone, o)
	return err
}

// The methods below are gobreaker callbacks. gobreaker runs all of them
// while holding its mutex, which is what guards tripCounts and probeCounts.

func (b *Breaker) readyToTrip(c gobreaker.Counts) bool {
	trip := c.ConsecutiveFailures >= b.consecutive
	if !trip && b.ratio > 0 {
		n := c.TotalSuccesses + c.TotalFailures
		// The share as a quotient: it rounds to the ratio written as that
		// fraction (7/25 is the double 0.28), where 0.28×25 rounds above 7.
		trip = n > 0 && n >= b.minRequests && float64(c.TotalFailures)/float64(n) >= b.ratio
	}
	if trip {
		b.tripCounts = fromGobreaker(c)
	}
	return trip
}

func (b *Breaker) isExcluded(err error) bool {
	if err != errNeutral {
		return false
	}
	if State(b.state.Load()) == StateHalfOpen {
		b.probeCounts.Requests++
		b.probeCounts.TotalNeutral++
	}
	return true
}

func (b *Breaker) isSuccessful(err error) bool {
	ok := err == nil
	if State(b.state.Load()) == StateHalfOpen {
		c := &b.probeCounts
		c.Requests++
		if ok {
			c.TotalSuccesses++
			c.ConsecutiveSuccesses++
			c.ConsecutiveFailures = 0
		} else {
			c.TotalFailures++
			c.ConsecutiveFailures++
			c.ConsecutiveSuccesses = 0
		}
	}
	return ok
}

func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	ev := StateChange{Name: b.name, From: State(from), To: State(to)}
	switch ev.From {
	case StateClosed:
		ev.Counts = b.tripCounts
	case StateHalfOpen:
		ev.Counts = b.probeCounts
	}
	b.tripCounts = Counts{}
	b.probeCounts = Counts{}
	if ev.To == StateOpen {
		b.openUntil.Store(b.now() + openFor(b.timeout, b.jitter))
	}
	b.state.Store(uint32(ev.To))
	if b.onChange == nil {
		return
	}
	b.evMu.Lock()
	b.events = append(b.events, ev)
	b.hasEvents.Store(true)
	b.evMu.Unlock()
}

// flush delivers queued events, outside gobreaker's lock. Only one
// goroutine delivers at a time, so events reach the callback in order; a
// goroutine that finds another one delivering leaves its events to it.
func (b *Breaker) flush() {
	b.evMu.Lock()
	if b.delivering || len(b.events) == 0 {
		b.evMu.Unlock()
		return
	}
	b.delivering = true
	defer func() {
		// Runs with evMu held, normally and after a panicking callback.
		b.delivering = false
		b.hasEvents.Store(len(b.events) > 0)
		b.evMu.Unlock()
	}()
	for len(b.events) > 0 {
		ev := b.events[0]
		b.events[0] = StateChange{}
		b.events = b.events[1:]
		b.evMu.Unlock()
		func() {
			defer b.evMu.Lock()
			b.onChange(ev)
		}()
	}
}
