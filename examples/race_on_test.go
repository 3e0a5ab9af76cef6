//go:build race

package examples_test

// raceEnabled makes the test build the examples with -race too.
const raceEnabled = true
