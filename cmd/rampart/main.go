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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: rampart drill [flags] | rampart topology validate FILE|URL | rampart topology lookup KEY")
		return 2
	}
	switch args[0] {
	case "drill":
		return runDrillCmd(ctx, args[1:], stdout, stderr)
	case "topology":
		return runTopology(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "rampart: unknown command %q\n", args[0])
		return 2
	}
}
