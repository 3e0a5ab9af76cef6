package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Each scenario's own invariants pass on good figures and fail on bad ones.
func TestScenarioChecks(t *testing.T) {
	base := Result{AttemptTimeoutMs: 250, MaxBackoffMs: 100, ProbeCap: 2, ReadCalls: 1000, WriteCalls: 100}
	cases := []struct {
		scenario string
		good     func(*Result)
		bad      func(*Result)
	}{
		{"primary-crash",
			func(r *Result) { r.ReadAvailability, r.EpochChanges = 1, 1 },
			func(r *Result) { r.ReadAvailability, r.EpochChanges = 1, 1; r.MaxWriteOverDeadline = 500 }},
		// No replica was promoted.
		{"primary-crash",
			func(r *Result) { r.ReadAvailability, r.EpochChanges = 1, 1 },
			func(r *Result) { r.ReadAvailability, r.EpochChanges = 1, 0 }},
		// No reads: read availability shows nothing.
		{"brownout",
			func(r *Result) { r.ReadAvailability = 1 },
			func(r *Result) { r.ReadAvailability, r.ReadCalls = 1, 0 }},
		// No reads: their latency shows nothing either (p99 of none is 0).
		{"slow-node",
			func(r *Result) { r.ReadP99ms = 257 },
			func(r *Result) { r.ReadP99ms, r.ReadCalls = 0, 0 }},
		{"throttled",
			func(r *Result) { r.ReadAvailability = 1; r.ReadP99ms = 3 },
			func(r *Result) { r.ReadAvailability, r.ReadP99ms, r.ReadCalls = 1, 0, 0 }},
		// No writes: none waited past its deadline, vacuously.
		{"outage-recovery",
			func(r *Result) { r.AttemptsPerCallFault = 0.9; r.MaxProbesInHalfOpen = 2 },
			func(r *Result) { r.AttemptsPerCallFault = 0.9; r.MaxProbesInHalfOpen = 2; r.WriteCalls = 0 }},
		// An attempt reached a node without a valid traceparent.
		{"throttled",
			func(r *Result) { r.ReadAvailability = 1; r.ReadP99ms = 3 },
			func(r *Result) { r.ReadAvailability = 1; r.ReadP99ms = 3; r.BadTraceparents = 1 }},
		{"brownout",
			func(r *Result) { r.ReadAvailability = 0.999 },
			func(r *Result) { r.ReadAvailability = 0.98 }},
		{"outage-recovery",
			func(r *Result) { r.AttemptsPerCallFault = 0.9; r.MaxProbesInHalfOpen = 2 },
			func(r *Result) { r.AttemptsPerCallFault = 0.9; r.MaxProbesInHalfOpen = 3 }},
		// Healed, but calls still fail at the end of the run.
		{"outage-recovery",
			func(r *Result) { r.HealedAt, r.CallsAfterHeal, r.SuccessAfterHeal = 6, 200, ptr(0.99) },
			func(r *Result) { r.HealedAt, r.CallsAfterHeal, r.SuccessAfterHeal = 6, 200, ptr(0.7) }},
		// A call that saw an error was not exported.
		{"brownout",
			func(r *Result) { r.ReadAvailability, r.CallsWithErrors, r.ErrorCallSpans = 1, 10, 12 },
			func(r *Result) { r.ReadAvailability, r.CallsWithErrors, r.ErrorCallSpans = 1, 10, 9 }},
		{"slow-node",
			func(r *Result) { r.ReadP99ms = 257 },
			func(r *Result) { r.ReadP99ms = 3000 }},
		{"slow-node",
			func(r *Result) { r.ReadP99ms, r.MaxWriteOverDeadline = 257, 5 },
			func(r *Result) { r.ReadP99ms, r.MaxWriteOverDeadline = 257, 2000 }},
		{"throttled",
			func(r *Result) { r.ReadAvailability = 1; r.ReadP99ms = 3 },
			func(r *Result) { r.ReadAvailability = 1; r.ReadP99ms = 1002 }},
	}
	for _, tc := range cases {
		for _, want := range []bool{true, false} {
			r := base
			r.Scenario = tc.scenario
			if want {
				tc.good(&r)
			} else {
				tc.bad(&r)
			}
			ok := true
			for _, c := range check(r) {
				ok = ok && c.OK
			}
			if ok != want {
				t.Errorf("%s: checks pass = %v, want %v (%+v)", tc.scenario, ok, want, check(r))
			}
		}
	}
}

func ptr(v float64) *float64 { return &v }

// A recovery that failed outright (every call after the heal failed) keeps
// its 0 success rate in the JSON output and the HTML report.
func TestFailedRecoveryReported(t *testing.T) {
	r := Result{Scenario: "brownout", HealedAt: 6, CallsAfterHeal: 200, SuccessAfterHeal: ptr(0)}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte(`"success_after_heal":0`)) {
		t.Errorf("calls_after_heal=200 but no success_after_heal in %s", js)
	}
	if !strings.Contains(renderHTML([]Result{r}), "<td>success_after_heal</td>") {
		t.Errorf("HTML report has no success_after_heal row for a failed recovery")
	}
}
