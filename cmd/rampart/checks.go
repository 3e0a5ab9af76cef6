package main

import "fmt"

// Check is one invariant the drill holds a scenario's figures to.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// writeDeadlineSlackMs is how far past its deadline a write may return and
// still count as "no longer than its deadline": the scheduler's wake-up, not
// a wait the client chose.
const writeDeadlineSlackMs = 20

// check holds r to the invariants every scenario must meet and to its own.
func check(r Result) []Check {
	var cs []Check
	add := func(name string, ok bool, format string, args ...any) {
		cs = append(cs, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	// A run without reads (--writes 1) shows nothing of read availability:
	// it fails the check rather than pass it with a vacuous 1.
	readAvail := func(min float64) {
		add(fmt.Sprintf("read_availability >= %g", min), r.ReadCalls > 0 && r.ReadAvailability >= min,
			"%.5f of %d reads", r.ReadAvailability, r.ReadCalls)
	}
	add("failed_calls == error_spans", r.FailedCalls == r.ErrorSpans, "%d failed calls, %d error spans", r.FailedCalls, r.ErrorSpans)
	// Every call that failed, or retried after a failed attempt, is
	// exported as an error (the tracer also knows of local rejections the
	// load generator cannot see, hence >=).
	add("error_call_spans >= calls_with_errors", r.ErrorCallSpans >= r.CallsWithErrors,
		"%d error call spans, %d calls with errors", r.ErrorCallSpans, r.CallsWithErrors)
	add("body_mismatches == 0", r.BodyMismatches == 0, "%d", r.BodyMismatches)
	add("bad_traceparents == 0", r.BadTraceparents == 0, "%d requests without a valid traceparent", r.BadTraceparents)
	add("leaked_goroutines == 0", r.LeakedGoroutines == 0, "%d", r.LeakedGoroutines)
	// Writes fail fast or finish in time in every fault, slow and
	// throttled primaries included: none waits past its own deadline.
	// A run without writes (--writes 0) shows nothing of them: the check
	// fails rather than pass vacuously, as the read checks do.
	add("no write waits past its deadline", r.WriteCalls > 0 && r.MaxWriteOverDeadline <= writeDeadlineSlackMs,
		"worst %.1f ms past (slack %d ms) of %d writes", r.MaxWriteOverDeadline, writeDeadlineSlackMs, r.WriteCalls)
	if r.HealedAt > 0 && r.CallsAfterHeal > 0 && r.SuccessAfterHeal != nil {
		// The fault is over for the last quarter of the run: a second after
		// the heal, calls succeed again (breakers closed, connections back).
		// A run too short to leave calls that late is not held to it.
		add("recovered: success_after_heal >= 0.95", *r.SuccessAfterHeal >= 0.95,
			"%.3f of %d calls started 1s or more after the heal at %.1fs", *r.SuccessAfterHeal, r.CallsAfterHeal, r.HealedAt)
	}
	switch r.Scenario {
	case "primary-crash":
		readAvail(0.999)
		// The master promoted a replica (epoch_changes counts its map changes).
		add("epoch_changes >= 1", r.EpochChanges >= 1, "%d", r.EpochChanges)
	case "brownout":
		readAvail(0.995)
	case "outage-recovery":
		add("attempts_per_call during outage <= 1.2", r.AttemptsPerCallFault <= 1.2, "%.3f", r.AttemptsPerCallFault)
		add("probes in half-open <= cap", r.MaxProbesInHalfOpen <= r.ProbeCap, "max %d, cap %d", r.MaxProbesInHalfOpen, r.ProbeCap)
	case "slow-node":
		// One attempt times out on the slow node, the backoff runs, and
		// the next attempt goes to a healthy replica (50 ms of slack for
		// that attempt and the scheduler).
		bound := r.AttemptTimeoutMs + r.MaxBackoffMs + 50
		add("read p99 <= attempt timeout + backoff cap + 50ms", r.ReadCalls > 0 && r.ReadP99ms <= bound,
			"p99 %.1f ms of %d reads, bound %.0f ms", r.ReadP99ms, r.ReadCalls, bound)
	case "throttled":
		// The Retry-After is about the throttled node: a read moves to a
		// replica after the usual backoff, never waiting out the pushback.
		readAvail(0.999)
		bound := r.MaxBackoffMs + 50
		add("read p99 <= backoff cap + 50ms", r.ReadCalls > 0 && r.ReadP99ms <= bound,
			"p99 %.1f ms of %d reads, bound %.0f ms", r.ReadP99ms, r.ReadCalls, bound)
	}
	return cs
}
