package grpcmw

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
)

// gRPC runs a call's OnFinish callbacks once, with the call's status. The
// retry step runs several attempts with the caller's call options, and each
// attempt would run them again, with its own error. So the retry step takes
// the caller's OnFinish callbacks out of its attempts' options and runs
// them itself, once: with the end of the stream of the attempt the call
// committed to, or with the call's error when it committed to none. The
// wrappers above the retry step (StreamTracing, the user's own) can then
// rely on OnFinish as they would on gRPC's.

// callFinish holds the caller's OnFinish callbacks of one call.
type callFinish struct {
	fns  []func(error)
	done atomic.Bool
}

// splitFinish returns opts without its grpc.OnFinish options, of which
// there are n (parseCallOptions counts them), and their callbacks. With
// n == 0 it returns opts itself and nil, allocating nothing.
func splitFinish(opts []grpc.CallOption, n int) ([]grpc.CallOption, *callFinish) {
	if n == 0 {
		return opts, nil
	}
	rest := make([]grpc.CallOption, 0, len(opts)-n)
	cf := &callFinish{fns: make([]func(error), 0, n)}
	for _, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			if f.OnFinish != nil {
				cf.fns = append(cf.fns, f.OnFinish)
			}
			continue
		}
		rest = append(rest, o)
	}
	return rest, cf
}

// deliver runs the callbacks with err the first time it is called. A nil
// cf does nothing. A callback may use the stream, and so call deliver
// again (a Header that starts the attempts on an ended context): that
// call returns at once.
func (cf *callFinish) deliver(err error) {
	if cf == nil || !cf.done.CompareAndSwap(false, true) {
		return
	}
	for _, f := range cf.fns {
		f(err)
	}
}

// attempt returns the part of a stream attempt in cf, or nil for a nil cf.
func (cf *callFinish) attempt() *attemptFinish {
	if cf == nil {
		return nil
	}
	return &attemptFinish{cf: cf}
}

// attemptFinish is one stream attempt's part in a callFinish: gRPC's end
// of the attempt's stream is delivered once the call has committed to the
// attempt, whichever of the two comes first.
type attemptFinish struct {
	cf        *callFinish
	mu        sync.Mutex
	committed bool
	finished  bool
	err       error
}

// opts returns opts with the attempt's finishing callback added; a nil af
// returns opts.
func (af *attemptFinish) opts(opts []grpc.CallOption) []grpc.CallOption {
	if af == nil {
		return opts
	}
	return append(opts[:len(opts):len(opts)], grpc.OnFinish(af.onFinish))
}

func (af *attemptFinish) onFinish(err error) {
	af.mu.Lock()
	af.finished, af.err = true, err
	committed := af.committed
	af.mu.Unlock()
	if committed {
		af.cf.deliver(err)
	}
}

// commit makes the attempt's stream the call's: its end is the call's end.
// A nil af does nothing.
func (af *attemptFinish) commit() {
	if af == nil {
		return
	}
	af.mu.Lock()
	af.committed = true
	finished, err := af.finished, af.err
	af.mu.Unlock()
	if finished {
		af.cf.deliver(err)
	}
}
