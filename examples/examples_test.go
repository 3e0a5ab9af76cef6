// Package examples_test builds and runs every example program with a time
// limit and checks the lines it prints, so an example can never silently rot.
package examples_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// want lists, per example directory, patterns that must each match a line of
// the program's output. Counts are exact where the program makes them so
// (faults in clustertest are deterministic); where timing decides, the
// program prints a judgment and the pattern checks that.
var want = map[string][]string{
	"httpclient": {
		`^crashed 127\.0\.11\.1, the primary of partition 0, after 100 reads$`,
		`^reads: 200/200 succeeded$`,
		`^reads of partition 0 served by its replica after the crash: 60$`,
		`^topology: epoch \d+, partition 0 primary is now 127\.0\.11\.2$`,
		`^reads kept succeeding: true$`,
	},
	"grpcclient": {
		`^unary Echo served by 127\.0\.12\.1$`,
		`^Stream got 3 replies from 127\.0\.12\.1$`,
		`^during the brownout: unary 20/20 succeeded, streams 20/20 succeeded$`,
		`^primary took 40 calls and failed 20; replica served 20 retries$`,
		`^caller saw no errors: true$`,
	},
	"existing-service": {
		`^orders with an Idempotency-Key: 20/20 succeeded$`,
		`^inventory reads served by the replica: 20$`,
		`^pricing POSTs that got a 503 and were retried on the primary: 19$`,
		`^pricing writes sent to the replica: 0$`,
		`^POST bodies replayed byte for byte: true$`,
		`^orders without an Idempotency-Key: 1/2 succeeded, pricing POSTs sent: 2 `,
		`^shop behaved as described: true$`,
	},
	"telemetry": {
		`^calls: 205, failed: 5$`,
		`^rampart_breaker_state\{rampart_node="127\.0\.15\.1:\d+"\} 2$`,
		`^rampart_retries_total\{rampart_node="127\.0\.15\.2:\d+",rampart_partition="0"\} 5$`,
		`^rampart_failovers_total\{rampart_from_node="127\.0\.15\.1:\d+",rampart_partition="0",rampart_to_node="127\.0\.15\.2:\d+"\} 60$`,
		`^spans exported for failed calls: 5 \(5 of 5 calls\)$`,
		`^spans exported for calls that succeeded after a retry: 15 \(5 calls\)$`,
		`^spans exported for clean calls: \d+ \(\d+ of 195 calls, head-sampled at 1%\)$`,
		`^every call that saw an error was exported: true$`,
	},
	"custom-chain": {
		`^http: every 2nd request fails: calls 10, succeeded 10, attempts 19, breaker closed$`,
		`^http: every request fails: calls 5, rejected by the breaker 2, attempts 9, breaker open$`,
		`^grpc: every 2nd request fails: calls 10, succeeded 10, attempts 19, breaker closed$`,
		`^grpc: every request fails: calls 5, rejected by the breaker 2, attempts 9, breaker open$`,
		`^chains behaved as described: true$`,
	},
}

// TestEveryExampleChecked fails when an example directory has no entry in
// want, so that no example escapes TestExamplesRun.
func TestEveryExampleChecked(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(e.Name(), "main.go")); e.IsDir() && err == nil && len(want[e.Name()]) == 0 {
			t.Errorf("example %s has no patterns in want", e.Name())
		}
	}
}

func TestExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs programs")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	bin := t.TempDir()
	for dir, patterns := range want {
		t.Run(dir, func(t *testing.T) {
			exe := filepath.Join(bin, dir)
			args := []string{"build", "-o", exe}
			if raceEnabled {
				args = append(args, "-race")
			}
			build := exec.Command(goBin, append(args, "./"+dir)...)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build ./%s: %v\n%s", dir, err, out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			cmd.Env = append(os.Environ(), "RAMPART_EXAMPLE_TEST=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", dir, err, out.String())
			}
			for _, p := range patterns {
				if !regexp.MustCompile("(?m)" + p).Match(out.Bytes()) {
					t.Errorf("%s: no line matches %q in:\n%s", dir, p, out.String())
				}
			}
		})
	}
}
