package topology

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalid matches every error that rejects a map or payload: not JSON,
	// wrong JSON types, a broken rule of the map, or a payload over the size
	// cap. Use errors.As with *ValidationError to learn which rule.
	ErrInvalid = errors.New("topology: invalid map")

	// ErrTooLarge matches a payload larger than the size cap. Such errors
	// match ErrInvalid too.
	ErrTooLarge = errors.New("topology: payload too large")

	// ErrStaleEpoch matches a well-formed map that a Watcher ignored because
	// its epoch is lower than the epoch of the map in use.
	ErrStaleEpoch = errors.New("topology: stale epoch")

	// ErrRunning is returned by Watcher.Run when the watcher is already
	// running.
	ErrRunning = errors.New("topology: watcher already running")
)

// ValidationError says which rule of the topology map a payload or Map
// broke, and where. It matches ErrInvalid with errors.Is.
type ValidationError struct {
	// Partition is the partitionIndex of the offending partition, or -1 when
	// the problem concerns the whole map or the index is unknown.
	Partition int
	// Field is the JSON path of the offending field, such as "clusterEpoch"
	// or "partitions[1].primaryNodeIp"; empty when no single field is at
	// fault (a payload that is not JSON).
	Field string
	// Problem says what is wrong in words, such as
	// `gap: hashes 55555556-55555556 belong to no partition`.
	Problem string
	// Err is the underlying cause, such as a *json.SyntaxError, or nil.
	Err error
}

// Error returns "topology: invalid map: " followed by the field, the
// partition and the problem.
func (e *ValidationError) Error() string {
	msg := ErrInvalid.Error() + ": "
	if e.Field != "" {
		msg += e.Field
		if e.Partition >= 0 {
			msg += fmt.Sprintf(" (partition %d)", e.Partition)
		}
		msg += ": "
	} else if e.Partition >= 0 {
		msg += fmt.Sprintf("partition %d: ", e.Partition)
	}
	return msg + e.Problem
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the underlying cause, or nil.
func (e *ValidationError) Unwrap() error { return e.Err }
