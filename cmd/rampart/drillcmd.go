package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

const (
	// maxRate bounds --rate: the load generator ticks once per call, and
	// sheds calls past maxInFlight at once.
	maxRate = 10000
	// minPartitions is what the scenarios need: they break partitions 0,
	// 1 and 2 of the map.
	minPartitions = 3
)

// runDrillCmd parses the drill's flags, runs the chosen scenarios and prints
// or writes their results.
func runDrillCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	scen := fs.String("scenario", "all", "scenario to run: all, or one of "+strings.Join(names, ", "))
	dur := fs.Duration("duration", 8*time.Second, "how long each scenario runs")
	rateFlag := fs.Int("rate", 200, "logical calls per second")
	writes := fs.Float64("writes", 0.2, "share of calls that are writes (PUT with a body)")
	grpcShare := fs.Float64("grpc", 0.25, "share of calls sent over gRPC (the rest over HTTP)")
	topo := fs.String("topology", "", "topology map `FILE` to start the cluster from (default: the embedded 3-partition cluster)")
	asJSON := fs.Bool("json", false, "print one JSON object per scenario")
	report := fs.String("report", "", "write an HTML report and results.json into `DIR`")
	seed := fs.Uint64("seed", 1, "seed of the load's key and mix choices")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "rampart drill: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *dur < 2*time.Second || *rateFlag < 1 || *rateFlag > maxRate || !(*writes >= 0 && *writes <= 1) || !(*grpcShare >= 0 && *grpcShare <= 1) {
		fmt.Fprintf(stderr, "rampart drill: --duration must be at least 2s, --rate within [1,%d], --writes and --grpc within [0,1]\n", maxRate)
		return 2
	}
	var run []scenario
	if *scen == "all" {
		run = scenarios
	} else {
		for _, name := range strings.Split(*scen, ",") {
			sc, ok := scenarioByName(strings.TrimSpace(name))
			if !ok {
				fmt.Fprintf(stderr, "rampart drill: unknown scenario %q (want all, %s)\n", name, strings.Join(names, ", "))
				return 2
			}
			run = append(run, sc)
		}
	}
	m, err := loadMap(ctx, *topo)
	if err != nil {
		fmt.Fprintf(stderr, "rampart drill: topology: %v\n", err)
		return 1
	}
	if len(m.Partitions) < minPartitions {
		fmt.Fprintf(stderr, "rampart drill: topology: the scenarios break partitions 0, 1 and 2: the map needs at least %d partitions, it has %d\n",
			minPartitions, len(m.Partitions))
		return 2
	}
	cfg := drillConfig{Duration: *dur, Rate: *rateFlag, WriteRatio: *writes, GRPCRatio: *grpcShare, Map: m, Seed: *seed}
	if isTerminal(os.Stderr) && stderr == io.Writer(os.Stderr) {
		cfg.Live = stderr
	}

	var results []Result
	failed := false
	for _, sc := range run {
		if cfg.Live != nil {
			fmt.Fprintf(stderr, "== %s: %s\n", sc.name, sc.doc)
		}
		res, err := runScenario(ctx, sc, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "rampart drill: %s: %v\n", sc.name, err)
			return 1
		}
		res.Checks = check(res)
		for _, c := range res.Checks {
			if !c.OK {
				failed = true
			}
		}
		results = append(results, res)
		if *asJSON {
			js, _ := json.Marshal(withoutTimeline(res))
			fmt.Fprintln(stdout, string(js))
		} else {
			printSummary(stdout, res)
		}
	}
	if *report != "" {
		if err := writeReport(*report, results); err != nil {
			fmt.Fprintf(stderr, "rampart drill: report: %v\n", err)
			return 1
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "report written to %s/index.html\n", *report)
		}
	}
	if failed {
		return 1
	}
	return 0
}

func withoutTimeline(r Result) Result {
	r.Timeline, r.Nodes = nil, nil
	return r
}

func printSummary(w io.Writer, r Result) {
	fmt.Fprintf(w, "%-16s calls=%d shed=%d read_avail=%.4f write_avail=%.4f attempts/call=%.3f p50=%.1fms p99=%.1fms failovers=%d breaker_opens=%d failed=%d error_spans=%d sampled_ok_spans=%d body_mismatches=%d leaked_goroutines=%d epoch_changes=%d\n",
		r.Scenario, r.Calls, r.ShedCalls, r.ReadAvailability, r.WriteAvailability, r.AttemptsPerCall, r.P50ms, r.P99ms,
		r.Failovers, r.BreakerOpens, r.FailedCalls, r.ErrorSpans, r.SampledSuccessSpans, r.BodyMismatches,
		r.LeakedGoroutines, r.EpochChanges)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s (%s)\n", mark, c.Name, c.Detail)
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
