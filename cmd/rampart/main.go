// Command rampart runs fault drills against a local cluster and offers tools
// for topology maps.
//
// Usage:
//
//	rampart drill [flags]
//	rampart topology validate FILE|URL
//	rampart topology lookup KEY
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageText = `usage: rampart drill [flags]
       rampart topology validate FILE|URL
       rampart topology lookup [--topology FILE|URL] [--json] KEY
Run "rampart drill --help" for the drill's flags.
`

// parseExit is the exit code of a flag set's Parse error: 0 for a request
// for help (the flag package has printed it), 2 for bad usage.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return 0
	case "drill":
		return runDrillCmd(ctx, args[1:], stdout, stderr)
	case "topology":
		return runTopology(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "rampart: unknown command %q\n", args[0])
		return 2
	}
}
