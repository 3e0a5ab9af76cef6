package sampling

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// Outcome is how an attempt, or a whole call, ended. The transports map their
// protocol's results onto it (status codes, gRPC codes, transport errors).
type Outcome uint8

const (
	// Success is an acceptable answer.
	Success Outcome = iota
	// Failure is a failed try: a transport error, a timeout, a 5xx or an
	// unavailable node. It makes the call errored.
	Failure
	// Rejected means a policy refused before anything was sent (breaker open,
	// bulkhead full, rate limited, retry budget spent). It makes the call
	// errored.
	Rejected
	// Canceled means the caller's context ended. It does not make the call
	// errored by itself; ending the call with the context's error does.
	Canceled
	// Neutral is an answer that says nothing about the node's health (for
	// example a 4xx). It does not make the call errored.
	Neutral
)

var outcomeNames = [...]string{"success", "failure", "rejected", "canceled", "neutral"}

// String returns the outcome's attribute value: "success", "failure",
// "rejected", "canceled" or "neutral".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// errors reports whether o makes a call errored.
func (o Outcome) errors() bool { return o == Failure || o == Rejected }

// Policy names the rampart policy behind a rejection or a measurement. It is
// the value of the rampart.policy attribute.
type Policy uint8

const (
	// NoPolicy means no policy is involved.
	NoPolicy Policy = iota
	// PolicyBreaker is the per-node circuit breaker.
	PolicyBreaker
	// PolicyBulkhead is the per-node concurrency limit.
	PolicyBulkhead
	// PolicyRateLimit is the rate limit.
	PolicyRateLimit
	// PolicyBudget is the retry budget.
	PolicyBudget
	// PolicyRetry is the retry policy (retries exhausted).
	PolicyRetry
	// PolicyFailover is the failover step (no healthy node).
	PolicyFailover
)

var policyNames = [...]string{"", "breaker", "bulkhead", "ratelimit", "budget", "retry", "failover"}

// String returns the policy's attribute value ("breaker", "bulkhead",
// "ratelimit", "budget", "retry", "failover"; "" for NoPolicy).
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "unknown"
}

// SampledByRatio reports whether a trace with this ID is sampled at ratio,
// with the rule of the OpenTelemetry SDK's TraceIDRatioBased sampler: the
// last 8 bytes of the ID, read big-endian and shifted right by one, are below
// ratio·2⁶³. A ratio ≥ 1 samples every trace; a ratio ≤ 0 or NaN none.
func SampledByRatio(traceID trace.TraceID, ratio float64) bool {
	return ratioBound(ratio).sampled(traceID)
}

// bound is a precomputed ratio: sampled iff x < b, with all/none flags.
type bound struct {
	b   uint64
	all bool
}

func ratioBound(ratio float64) bound {
	switch {
	case ratio >= 1:
		return bound{all: true}
	case !(ratio > 0): // also NaN
		return bound{}
	}
	return bound{b: uint64(ratio * (1 << 63))}
}

func (r bound) sampled(id trace.TraceID) bool {
	if r.all {
		return true
	}
	return binary.BigEndian.Uint64(id[8:16])>>1 < r.b
}

// clampRatio maps a configured ratio into [0, 1].
func clampRatio(r float64) float64 {
	if math.IsNaN(r) || r < 0 {
		return 0
	}
	return math.Min(r, 1)
}

// newTraceID returns a random, valid trace ID. math/rand/v2's global source is
// a per-thread ChaCha8 state: no lock, no allocation.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
		if id.IsValid() {
			return id
		}
	}
}

// newSpanID returns a random, valid span ID.
func newSpanID() trace.SpanID {
	var id trace.SpanID
	for {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
		if id.IsValid() {
			return id
		}
	}
}
