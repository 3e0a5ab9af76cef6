package main

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Result is what one scenario of the drill measured. The JSON field names are
// the drill's public output format (--json, --report).
type Result struct {
	Scenario             string   `json:"scenario"`
	DurationSeconds      float64  `json:"duration_s"`
	HealedAt             float64  `json:"healed_at_s,omitempty"`        // when the fault was healed, 0 if never
	CallsAfterHeal       int64    `json:"calls_after_heal,omitempty"`   // calls started 1s or more after the heal
	SuccessAfterHeal     *float64 `json:"success_after_heal,omitempty"` // their success rate; nil without them (0 is shown)
	Calls                int64    `json:"calls"`
	ShedCalls            int64    `json:"shed_calls"`
	ReadCalls            int64    `json:"read_calls"`
	WriteCalls           int64    `json:"write_calls"`
	ReadAvailability     float64  `json:"read_availability"`
	WriteAvailability    float64  `json:"write_availability"`
	AttemptsPerCall      float64  `json:"attempts_per_call"`
	AttemptsPerCallFault float64  `json:"attempts_per_call_during_fault"`
	P50ms                float64  `json:"p50_ms"`
	P99ms                float64  `json:"p99_ms"`
	ReadP99ms            float64  `json:"read_p99_ms"`
	MaxWriteOverDeadline float64  `json:"max_write_over_deadline_ms"`
	Failovers            int64    `json:"failovers"`
	BreakerOpens         int64    `json:"breaker_opens"`
	MaxProbesInHalfOpen  int64    `json:"max_probes_in_half_open"`
	ProbeCap             int64    `json:"probe_cap"`
	RetryBudgetRefusals  int64    `json:"retry_budget_refusals"`
	FailedCalls          int64    `json:"failed_calls"`
	ErrorSpans           int64    `json:"error_spans"`
	CallsWithErrors      int64    `json:"calls_with_errors"`
	ErrorCallSpans       int64    `json:"error_call_spans"`
	SampledSuccessSpans  int64    `json:"sampled_success_spans"`
	ServerRequests       int64    `json:"server_requests"`
	BodyMismatches       int64    `json:"body_mismatches"`
	BadTraceparents      int64    `json:"bad_traceparents"`
	LeakedGoroutines     int      `json:"leaked_goroutines"`
	EpochChanges         int64    `json:"epoch_changes"`
	AttemptTimeoutMs     float64  `json:"attempt_timeout_ms"`
	MaxBackoffMs         float64  `json:"max_backoff_ms"`
	Checks               []Check  `json:"checks"`
	Timeline             []Tick   `json:"timeline,omitempty"`
	Nodes                []string `json:"nodes,omitempty"`
}

// Tick is one second of a scenario's timeline.
type Tick struct {
	T               float64 `json:"t"`
	Calls           int64   `json:"calls"`
	SuccessRate     float64 `json:"success_rate"`
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	AttemptsPerCall float64 `json:"attempts_per_call"`
	Epoch           int64   `json:"epoch"`
	Breakers        []int   `json:"breakers"` // per Result.Nodes: 0 closed, 1 half-open, 2 open
}

// writeReport writes DIR/index.html (self-contained: inline SVG, no scripts,
// no network) and DIR/results.json.
func writeReport(dir string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.html"), []byte(renderHTML(results)), 0o644)
}

func renderHTML(results []Result) string {
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rampart drill report</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
svg.chart{display:block;margin:10px 0}.title{font-weight:600;font-size:13px}.tick{font-size:11px;fill:#555}
.legend{font-size:11px}.grid{stroke:#eee}.frame{fill:none;stroke:#999}
</style></head><body><h1>rampart drill report</h1>
<p>Each scenario drives a mixed read/write load through the rampart HTTP preset against a local cluster on loopback and injects one fault. Counts of requests and body checks come from the servers; span counts from the telemetry pipeline.</p>`)
	b.WriteString(`<table><tr><th>scenario</th><th>calls</th><th>read avail.</th><th>write avail.</th><th>attempts/call</th><th>p50 ms</th><th>p99 ms</th><th>failed</th><th>error spans</th><th>body mismatches</th></tr>`)
	for _, r := range results {
		fmt.Fprintf(&b, `<tr><td><a href="#%s">%s</a></td><td class="n">%d</td><td class="n">%.4f</td><td class="n">%.4f</td><td class="n">%.3f</td><td class="n">%.1f</td><td class="n">%.1f</td><td class="n">%d</td><td class="n">%d</td><td class="n">%d</td></tr>`,
			html.EscapeString(r.Scenario), html.EscapeString(r.Scenario), r.Calls, r.ReadAvailability, r.WriteAvailability,
			r.AttemptsPerCall, r.P50ms, r.P99ms, r.FailedCalls, r.ErrorSpans, r.BodyMismatches)
	}
	b.WriteString(`</table>`)
	for _, r := range results {
		fmt.Fprintf(&b, `<h2 id="%s">%s</h2>`, html.EscapeString(r.Scenario), html.EscapeString(r.Scenario))
		b.WriteString(`<table>`)
		js, _ := json.Marshal(r)
		var flat map[string]any
		_ = json.Unmarshal(js, &flat)
		for _, k := range sortedKeys(flat) {
			if k == "timeline" || k == "nodes" {
				continue
			}
			fmt.Fprintf(&b, `<tr><td>%s</td><td class="n">%v</td></tr>`, html.EscapeString(k), flat[k])
		}
		b.WriteString(`</table>`)
		var succ, p50, p99, att, epoch []point
		for _, t := range r.Timeline {
			succ = append(succ, point{t.T, t.SuccessRate * 100})
			p50 = append(p50, point{t.T, t.P50ms})
			p99 = append(p99, point{t.T, t.P99ms})
			att = append(att, point{t.T, t.AttemptsPerCall})
			epoch = append(epoch, point{t.T, float64(t.Epoch)})
		}
		b.WriteString(lineChart("success rate", "%", []series{{Name: "success rate", Points: succ}}, 0, 100))
		b.WriteString(lineChart("latency percentiles", "ms", []series{{Name: "p50", Points: p50}, {Name: "p99", Points: p99}}, 0, 0))
		b.WriteString(lineChart("attempts per call", "", []series{{Name: "attempts/call", Points: att}}, 0, 0))
		if len(epoch) > 0 {
			lo, hi := epoch[0].Y, epoch[0].Y
			for _, p := range epoch {
				lo, hi = min(lo, p.Y), max(hi, p.Y)
			}
			b.WriteString(lineChart("cluster epoch", "", []series{{Name: "epoch", Points: epoch}}, lo-1, hi+1))
		}
		states := make([][]int, len(r.Nodes))
		for _, t := range r.Timeline {
			for i := range r.Nodes {
				s := 0
				if i < len(t.Breakers) {
					s = t.Breakers[i]
				}
				states[i] = append(states[i], s)
			}
		}
		b.WriteString(stateStrip("breaker state per node", r.Nodes, states, r.DurationSeconds))
	}
	b.WriteString(`</body></html>`)
	return b.String()
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
