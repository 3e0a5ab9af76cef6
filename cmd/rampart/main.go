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
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: rampart drill [flags] | rampart topology validate FILE|URL | rampart topology lookup KEY")
		return 2
	}
	switch args[0] {
	case "drill":
		fmt.Fprintln(stdout, "rampart drill: not built yet")
		return 0
	default:
		fmt.Fprintf(stderr, "rampart: unknown command %q\n", args[0])
		return 2
	}
}
