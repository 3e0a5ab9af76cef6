package grpcmw

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// PushbackHeader is the trailer a server sets to tell clients when, or
// whether, to retry (gRFC A6): a decimal count of milliseconds, or a
// negative value for "do not retry".
const PushbackHeader = "grpc-retry-pushback-ms"

// outcome is what one attempt means to a node's breaker.
type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeNeutral
)

// verdict is the classification of one attempt's result.
type verdict struct {
	outcome  outcome
	retry    bool          // the attempt may be retried (on another node)
	pushback time.Duration // server pushback, meaningful when hasPB
	hasPB    bool
}

// classify decides what the result err of one attempt means. callerCtx is the
// context of the logical call: when it is done the result is neutral and
// never retried. attemptCtx is the attempt's own context (it may carry a
// per-attempt timeout). trailer holds the attempt's trailer, or nil.
//
//   - nil: success.
//   - Unavailable: failure, retried, after the grpc-retry-pushback-ms
//     trailer's delay when there is one; a negative (or malformed) pushback
//     stops the retries (gRFC A6).
//   - DeadlineExceeded: a failure. Retried when the attempt's own context
//     expired, or is about to (an attempt timeout); not retried when the
//     server's own deadline ran out. Neutral, not retried, when the
//     caller's deadline is about to pass (the server enforced it a moment
//     before the caller's timer fired).
//   - ResourceExhausted: neutral; retried only with a non-negative
//     grpc-retry-pushback-ms trailer (negative or malformed: not retried).
//   - Canceled while the caller's context is alive: neutral, not retried;
//     a failure, retried, when the attempt's own context was cancelled (a
//     stream's attempt timeout).
//   - Internal, Unknown, DataLoss: failure, not retried.
//   - any other code: success for the breaker (the node answered), not
//     retried.
//   - the caller's context done: neutral, not retried.
func classify(callerCtx, attemptCtx context.Context, err error, trailer metadata.MD) verdict {
	if err == nil {
		return verdict{outcome: outcomeSuccess}
	}
	if callerCtx.Err() != nil {
		return verdict{outcome: outcomeNeutral}
	}
	switch status.Code(err) {
	case codes.OK:
		return verdict{outcome: outcomeSuccess}
	case codes.Unavailable:
		if d, ok := parsePushback(trailer); ok {
			if d < 0 {
				return verdict{outcome: outcomeFailure}
			}
			return verdict{outcome: outcomeFailure, retry: true, pushback: d, hasPB: true}
		}
		return verdict{outcome: outcomeFailure, retry: true}
	case codes.DeadlineExceeded:
		switch {
		case deadlineDue(callerCtx):
			// The server enforced the caller's own deadline a moment
			// before the caller's timer fired.
			return verdict{outcome: outcomeNeutral}
		case attemptTimedOut(attemptCtx):
			return verdict{outcome: outcomeFailure, retry: true}
		}
		// A node whose handlers overrun their own deadlines is unhealthy.
		return verdict{outcome: outcomeFailure}
	case codes.ResourceExhausted:
		d, ok := parsePushback(trailer)
		if !ok || d < 0 {
			return verdict{outcome: outcomeNeutral}
		}
		return verdict{outcome: outcomeNeutral, retry: true, pushback: d, hasPB: true}
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return verdict{outcome: outcomeFailure}
	case codes.Canceled:
		if attemptCtx != nil && attemptCtx.Err() != nil {
			// The attempt's own context, not the caller's, was cancelled:
			// a stream attempt that got no first message in time.
			return verdict{outcome: outcomeFailure, retry: true}
		}
		// The caller's context is alive: the server or a transport cancelled.
		return verdict{outcome: outcomeNeutral}
	default:
		return verdict{outcome: outcomeSuccess}
	}
}

// deadlineSlack is how close to its deadline an attempt may be and still
// count as timed out. The server learns the attempt's deadline from the
// grpc-timeout header and enforces it on its own clock, so its
// DeadlineExceeded (RST_STREAM CANCEL) can reach the client a moment before
// the client's own timer fires.
const deadlineSlack = 10 * time.Millisecond

// attemptTimedOut reports whether the attempt's own deadline has passed, or
// is about to: a DeadlineExceeded then comes from the attempt timeout and is
// retryable.
func attemptTimedOut(attemptCtx context.Context) bool {
	if attemptCtx == nil {
		return false
	}
	return attemptCtx.Err() != nil || deadlineDue(attemptCtx)
}

// deadlineDue reports whether ctx has a deadline within deadlineSlack.
func deadlineDue(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) <= deadlineSlack
}

// parsePushback reads the grpc-retry-pushback-ms trailer. ok is false when
// the trailer is absent. A present but malformed value (not a single decimal
// integer) counts as a negative pushback, as gRFC A6 says: do not retry.
func parsePushback(md metadata.MD) (d time.Duration, ok bool) {
	vals := md.Get(PushbackHeader)
	if len(vals) == 0 {
		return 0, false
	}
	if len(vals) > 1 {
		return -1, true
	}
	ms, err := strconv.ParseInt(vals[0], 10, 64)
	if err != nil {
		return -1, true
	}
	if ms < 0 {
		return -1, true
	}
	const maxMS = int64(1<<63-1) / int64(time.Millisecond)
	if ms > maxMS {
		ms = maxMS
	}
	return time.Duration(ms) * time.Millisecond, true
}
