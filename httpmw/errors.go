package httpmw

import (
	"errors"
	"strconv"
)

// ErrNoHealthyNode is returned, wrapped or as is, when failover finds no node
// of the request's partition that it may send the attempt to: every candidate
// has an open breaker, or a write finds its partition's primary open.
var ErrNoHealthyNode = errors.New("httpmw: no healthy node")

// ErrNoPartitionKey is returned when a request to a logical host configured
// for failover carries no partition key, neither in its context (see
// WithPartitionKey) nor in the configured header.
var ErrNoPartitionKey = errors.New("httpmw: no partition key")

// ErrNoTopology is returned when a request to a logical host configured for
// failover finds no topology map: its source has none yet, and none came
// within Service.TopologyWait.
var ErrNoTopology = errors.New("httpmw: no topology map")

// StatusError reports a response whose status code is retryable (429, or
// 5xx other than 501) when the retry layer gives up on it. The response's
// body has been drained and closed; the caller has nothing to close.
//
// The common codes' values are preallocated and shared between calls: read
// them, never modify them. It is usually found wrapped in a retry
// exhaustion error:
//
//	var se *httpmw.StatusError
//	if errors.As(err, &se) && se.Code == http.StatusServiceUnavailable { ... }
type StatusError struct {
	// Code is the HTTP status code of the last response.
	Code int
}

// Error returns "httpmw: retryable status NNN". It never contains the URL,
// the query or a header value.
func (e *StatusError) Error() string {
	switch e.Code { // the common codes' texts, without allocating
	case 429:
		return "httpmw: retryable status 429"
	case 500:
		return "httpmw: retryable status 500"
	case 502:
		return "httpmw: retryable status 502"
	case 503:
		return "httpmw: retryable status 503"
	case 504:
		return "httpmw: retryable status 504"
	}
	return "httpmw: retryable status " + strconv.Itoa(e.Code)
}

// NodeError reports that failover could not route an attempt of a request
// for a logical host. It matches ErrNoHealthyNode with errors.Is, and also
// the breaker's open error when the reason is an open breaker.
type NodeError struct {
	// Host is the logical host of the request (never a query or a path).
	Host string
	// Partition is the index of the partition the key hashed to, or -1
	// when the map has no usable partition for the key (a map given to
	// FixedTopology without validation).
	Partition int
	// Write is true when the request was a write confined to the primary.
	Write bool
	// Err is the cause: the breaker's open error, or nil.
	Err error
}

// Error describes the failure with the logical host and partition only.
func (e *NodeError) Error() string {
	s := "httpmw: no healthy node for " + e.Host + " partition " + strconv.Itoa(e.Partition)
	if e.Write {
		s += " (write: primary unavailable)"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrNoHealthyNode.
func (e *NodeError) Is(target error) bool { return target == ErrNoHealthyNode }

// Unwrap returns the cause, if any.
func (e *NodeError) Unwrap() error { return e.Err }
