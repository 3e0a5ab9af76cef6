package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDrillEndToEnd runs every scenario briefly against a real local cluster
// and holds the JSON it prints to the drill's invariants.
func TestDrillEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real cluster for several seconds")
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"drill", "--duration", "3s", "--rate", "150", "--json", "--report", dir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("drill exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(scenarios) {
		t.Fatalf("got %d JSON lines, want %d:\n%s", len(lines), len(scenarios), stdout.String())
	}
	required := []string{"scenario", "calls", "read_availability", "write_availability", "attempts_per_call",
		"p50_ms", "p99_ms", "failovers", "breaker_opens", "max_probes_in_half_open", "retry_budget_refusals",
		"failed_calls", "error_spans", "sampled_success_spans", "body_mismatches", "leaked_goroutines", "epoch_changes"}
	for i, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		for _, k := range required {
			if _, ok := obj[k]; !ok {
				t.Errorf("scenario %v: no field %q", obj["scenario"], k)
			}
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Scenario != scenarios[i].name {
			t.Errorf("line %d is scenario %q, want %q", i, r.Scenario, scenarios[i].name)
		}
		if r.Calls < 100 {
			t.Errorf("%s: only %d calls", r.Scenario, r.Calls)
		}
		if r.ServerRequests == 0 {
			t.Errorf("%s: the servers saw no request", r.Scenario)
		}
		// The invariants, recomputed here from the figures rather than
		// trusted from the drill's own verdicts.
		if r.FailedCalls != r.ErrorSpans {
			t.Errorf("%s: failed_calls %d != error_spans %d", r.Scenario, r.FailedCalls, r.ErrorSpans)
		}
		if r.BodyMismatches != 0 || r.LeakedGoroutines != 0 || r.BadTraceparents != 0 {
			t.Errorf("%s: body_mismatches %d, leaked_goroutines %d, bad_traceparents %d",
				r.Scenario, r.BodyMismatches, r.LeakedGoroutines, r.BadTraceparents)
		}
		if r.MaxProbesInHalfOpen > r.ProbeCap {
			t.Errorf("%s: %d probes in half-open, cap %d", r.Scenario, r.MaxProbesInHalfOpen, r.ProbeCap)
		}
		for _, c := range r.Checks {
			if !c.OK {
				t.Errorf("%s: check %q failed: %s", r.Scenario, c.Name, c.Detail)
			}
		}
	}

	// The report: self-contained HTML with its charts, and the same JSON.
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, sc := range scenarios {
		if !strings.Contains(html, `id="`+sc.name+`"`) {
			t.Errorf("report has no section for %s", sc.name)
		}
	}
	for _, chart := range []string{"success rate", "latency percentiles", "attempts per call", "cluster epoch", "breaker state per node"} {
		if n := strings.Count(html, `aria-label="`+chart+`"`); n != len(scenarios) {
			t.Errorf("report has %d %q charts, want %d", n, chart, len(scenarios))
		}
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "http://") || strings.Contains(html, "https://") {
		t.Error("report is not self-contained (script or external URL)")
	}
	if !strings.Contains(html, "<polyline") {
		t.Error("report charts have no lines")
	}
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var results []Result
	if err := json.Unmarshal(js, &results); err != nil || len(results) != len(scenarios) {
		t.Fatalf("results.json: %v, %d results", err, len(results))
	}
	if len(results[0].Timeline) < 2 {
		t.Errorf("results.json timeline has %d points", len(results[0].Timeline))
	}
}

func TestTopologyCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"topology", "validate", "default-topology.json"}, &out, &errb); code != 0 {
		t.Fatalf("validate default: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "valid: epoch 1, 3 partitions") {
		t.Errorf("validate output: %q", out.String())
	}
	bad := filepath.Join("..", "..", "..", "shared", "fixtures", "topology", "invalid-gap.json")
	if _, err := os.Stat(bad); err == nil {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), []string{"topology", "validate", bad}, &out, &errb); code != 1 {
			t.Errorf("validate invalid-gap: exit %d", code)
		}
		if !strings.Contains(errb.String(), "gap") {
			t.Errorf("validate invalid-gap: %q does not name the gap", errb.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"topology", "lookup", "--json", "user-42"}, &out, &errb); code != 0 {
		t.Fatalf("lookup: %d %s", code, errb.String())
	}
	var got struct {
		Hash      string `json:"hash"`
		Partition int    `json:"partition"`
		Primary   string `json:"primary"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Hash != "026073ab" || got.Partition != 0 || got.Primary != "127.0.1.5" {
		t.Errorf("lookup user-42 = %+v", got)
	}
	if code := run(context.Background(), []string{"drill", "--scenario", "nope"}, &out, &errb); code != 2 {
		t.Errorf("unknown scenario: exit %d", code)
	}
	// A rate the load generator cannot tick at is refused (it used to panic).
	if code := run(context.Background(), []string{"drill", "--rate", "2000000000"}, &out, &errb); code != 2 {
		t.Errorf("--rate 2000000000: exit %d", code)
	}
}

// TestDrillNeedsThreePartitions: a valid map with fewer partitions than the
// scenarios break is refused up front; it used to panic mid-scenario.
func TestDrillNeedsThreePartitions(t *testing.T) {
	f := filepath.Join(t.TempDir(), "two.json")
	two := `{"clusterEpoch":1,"masterNodeId":"m","partitionCount":2,"partitions":[
	 {"partitionIndex":0,"primaryNodeIp":"127.0.1.5","replicaNodeIps":["127.0.1.6"],"hashRangeStart":"00000000","hashRangeEnd":"7fffffff"},
	 {"partitionIndex":1,"primaryNodeIp":"127.0.2.5","replicaNodeIps":["127.0.2.6"],"hashRangeStart":"80000000","hashRangeEnd":"ffffffff"}]}`
	if err := os.WriteFile(f, []byte(two), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"drill", "--topology", f, "--duration", "2s"}, &out, &errb); code != 2 {
		t.Fatalf("2-partition map: exit %d (%s)", code, errb.String())
	}
	if !strings.Contains(errb.String(), "at least 3 partitions") {
		t.Errorf("error %q does not say what the map lacks", errb.String())
	}
}

// Asking for help is not an error: it exits 0 (the flag package prints the
// flags); bad usage exits 2.
func TestHelpExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"help"}, 0},
		{[]string{"drill", "--help"}, 0},
		{[]string{"drill", "-h"}, 0},
		{[]string{"topology", "lookup", "--help"}, 0},
		{[]string{"drill", "--no-such-flag"}, 2},
		{[]string{"nonsense"}, 2},
		{nil, 2},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != tc.code {
			t.Errorf("rampart %v exits %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
	}
}
