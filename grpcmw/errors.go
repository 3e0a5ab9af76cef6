package grpcmw

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrNoHealthyNode is the cause when no node of the call's partition may take
// the call: every candidate was already tried, has an open breaker, or (for a
// write) the primary cannot be used. Errors with this cause carry the code
// Unavailable.
var ErrNoHealthyNode = errors.New("grpcmw: no healthy node")

// Error is an error produced by a rampart policy, as returned to callers of a
// ClientConn. It carries a gRPC status (status.FromError and status.Code
// work) and unwraps to its cause, so errors.Is(err, breaker.ErrOpen),
// errors.Is(err, retry.ErrExhausted) and errors.As with the policies' error
// types hold as well.
type Error struct {
	// Code is the gRPC code the caller sees.
	Code codes.Code
	// Node is the node the error concerns ("ip:port"), or empty.
	Node string
	// Err is the cause: a policy's error, a context error, or the status
	// error of the last attempt.
	Err error
}

// Error returns "grpcmw: " followed by the node, if any, and the cause.
func (e *Error) Error() string {
	msg := "grpcmw: "
	if e.Node != "" {
		msg += "node " + e.Node + ": "
	}
	if e.Err == nil {
		return msg + e.Code.String()
	}
	// The cause may be grpcmw's own, already prefixed.
	return msg + strings.TrimPrefix(e.Err.Error(), "grpcmw: ")
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus returns a status with e.Code and e.Error() as the message.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Error()) }

// wrapErr turns err into an error that carries a gRPC status. Errors that
// already carry one (status errors, *Error) are returned as they are;
// context errors map to Canceled and DeadlineExceeded; anything else gets
// code, which callers choose per policy.
func wrapErr(err error, code codes.Code, node string) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		// The chain already has a status: keep it, unless the chain's
		// outermost error is not the status holder, in which case the
		// status must be lifted so status.FromError sees the right code.
		if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
			return err
		}
		return &Error{Code: se.GRPCStatus().Code(), Node: node, Err: err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return &Error{Code: code, Node: node, Err: err}
}

// NodeError reports that no node of a call's partition may take the call:
// each candidate was tried already, has an open breaker, or cannot connect,
// or the call is a write and the primary is out. It carries the code
// Unavailable, matches ErrNoHealthyNode with errors.Is, and unwraps to its
// cause, so a write refused because the primary's breaker is open also
// matches breaker.ErrOpen.
type NodeError struct {
	// Service is the service of the ClientConn's target ("orders").
	Service string
	// Partition is the index of the partition the key hashed to.
	Partition int
	// Write is true when the call was a write confined to the primary.
	Write bool
	// Err is the cause: the breaker's open error, or nil.
	Err error
}

// Error describes the failure with the service and partition only.
func (e *NodeError) Error() string {
	s := "grpcmw: no healthy node for " + e.Service + " partition " + strconv.Itoa(e.Partition)
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

// GRPCStatus returns a status with the code Unavailable.
func (e *NodeError) GRPCStatus() *status.Status { return status.New(codes.Unavailable, e.Error()) }

// ErrNoTopology is the cause when the failover step has no topology map
// yet (the watcher has not fetched one). Such errors carry Unavailable, or
// Canceled or DeadlineExceeded when the caller's context ended the wait.
var ErrNoTopology = errors.New("grpcmw: no topology map")
