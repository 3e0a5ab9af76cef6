package grpcmw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/retry"
)

// endStream wraps a ClientStream and calls onEnd exactly once: at the first
// response message when atFirst is set, when RecvMsg, SendMsg or Header
// reports the end of the stream, when the caller's context ends (a caller
// that abandons the stream), or, for a stream opened with its finishing
// option (see opts), when gRPC finishes the stream while none of the
// caller's calls is in progress (its ClientConn closing), whichever comes
// first.
//
// A call whose server sends one message (desc.ServerStreams unset: a
// client-streaming call, CloseAndRecv) ends with that message: gRPC reads
// the end of the stream itself and the caller never calls RecvMsg again.
type endStream struct {
	grpc.ClientStream
	atFirst bool
	onEnd   func(err error)
	ended   atomic.Bool
	calls   atomic.Int32             // the caller's calls in progress, which see the end themselves
	fin     atomic.Pointer[finished] // how gRPC last finished a stream opened with opts
	started atomic.Bool              // start returned the stream: set after stop
	stop    func() bool              // unregisters the AfterFunc
}

// finished is the status gRPC finished a stream with.
type finished struct{ err error }

// newEndStream returns the endStream of a stream not opened yet: pass
// s.opts(opts) to the streamer, then s.start with what it returned.
func newEndStream(desc *grpc.StreamDesc, atFirst bool, onEnd func(error)) *endStream {
	return &endStream{atFirst: atFirst || !desc.ServerStreams, onEnd: onEnd}
}

// opts returns the call options with gRPC's finishing callback added, so
// that the stream also ends when gRPC finishes it on its own. The callback
// runs on the goroutine that finishes the stream: inside one of the
// caller's calls, that call reports the end (and the status is kept for a
// Header that returns none); outside of them, once start has returned the
// stream, gRPC finished it itself (its ClientConn closing). Before that it
// is an open that failed, which start reports; below a retry step it may
// be a failed attempt's, which is not the stream's end.
func (s *endStream) opts(opts []grpc.CallOption) []grpc.CallOption {
	return append(opts[:len(opts):len(opts)], grpc.OnFinish(func(err error) {
		s.fin.Store(&finished{err})
		if s.started.Load() && s.calls.Load() == 0 {
			s.end(err) // start set s.stop before started
		}
	}))
}

// start wraps cs, the stream the streamer returned for s.opts, or ends s
// with err when it returned none.
func (s *endStream) start(ctx context.Context, cs grpc.ClientStream, err error) (grpc.ClientStream, error) {
	if err != nil {
		s.finish(err)
		return nil, err
	}
	s.ClientStream = cs
	// The AfterFunc may run before AfterFunc returns (a context already
	// done), so it must not read s.stop.
	s.stop = context.AfterFunc(ctx, func() { s.finish(ctx.Err()) })
	s.started.Store(true)
	if f := s.fin.Load(); f != nil {
		// gRPC finished the stream between the streamer's return and
		// started (its ClientConn closed): the callback left it to us.
		s.end(f.err)
	}
	return s, nil
}

// end ends the stream from its own methods, or from gRPC's finishing
// callback, which act only once start has returned (and set s.stop).
func (s *endStream) end(err error) {
	if s.ended.CompareAndSwap(false, true) {
		s.stop()
		s.onEnd(err)
	}
}

// finish ends the stream when its context ends, or when it could not be
// opened.
func (s *endStream) finish(err error) {
	if s.ended.CompareAndSwap(false, true) {
		s.onEnd(err)
	}
}

// RecvMsg receives from the wrapped stream and notes its end.
func (s *endStream) RecvMsg(m any) error {
	s.calls.Add(1)
	defer s.calls.Add(-1)
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == io.EOF:
		s.end(nil)
	case err != nil:
		s.end(err)
	case s.atFirst:
		s.end(nil)
	}
	return err
}

// Header waits for the wrapped stream's header. An error other than io.EOF
// ends the stream, as gRPC's rules let the caller stop there; so does no
// header and no error when gRPC has finished the stream meanwhile (its
// Header hides the status: it ended before any header).
func (s *endStream) Header() (metadata.MD, error) {
	s.calls.Add(1)
	defer s.calls.Add(-1)
	md, err := s.ClientStream.Header()
	switch {
	case err != nil && err != io.EOF:
		s.end(err)
	case err == nil && md == nil:
		if f := s.fin.Load(); f != nil {
			s.end(f.err)
		}
	}
	return md, err
}

// SendMsg sends on the wrapped stream; an error other than io.EOF ends it.
func (s *endStream) SendMsg(m any) error {
	s.calls.Add(1)
	defer s.calls.Add(-1)
	err := s.ClientStream.SendMsg(m)
	if err != nil && err != io.EOF {
		s.end(err)
	}
	return err
}

// StreamBreaker is UnaryBreaker for streams. The stream's outcome is
// decided by its first response: a message or a clean end is a success, an
// error is classified as for unary calls. A stream abandoned before that
// (its context cancelled) is neutral.
func StreamBreaker(g *breaker.Group) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		node, b := attemptBreaker(attemptFrom(ctx), cc, g)
		tk, err := b.Admit()
		if err != nil {
			return nil, breakerRefusal(ctx, node, err)
		}
		es := newEndStream(desc, true, func(err error) { tk.Done(breakerOutcome(ctx, err)) })
		cs, err := streamer(ctx, desc, cc, method, es.opts(opts)...)
		return es.start(ctx, cs, err)
	}
}

// StreamBulkhead is UnaryBulkhead for streams: the slot is held for the
// stream's whole life, until RecvMsg reports its end or its context ends.
func StreamBulkhead(g *bulkhead.Group) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		node := nodeOf(ctx, cc)
		p, err := acquireSlot(ctx, g, node)
		if err != nil {
			return nil, err
		}
		es := newEndStream(desc, false, func(error) { p.Release() })
		cs, err := streamer(ctx, desc, cc, method, es.opts(opts)...)
		return es.start(ctx, cs, err)
	}
}

// StreamRetry is UnaryRetry for streams, within what can be replayed:
//
//   - a server-streaming call (one request, many responses) is retried,
//     request replayed, as long as no response message has been received:
//     the first RecvMsg (or Header) runs the attempts, and once it returns a
//     message the stream is committed to its node. An interruption after the
//     first message is returned to the caller, never retried.
//   - client-streaming and bidirectional calls are retried only when opening
//     the stream fails, before any message is sent.
//
// For a server-streaming call, p.AttemptTimeout bounds the wait for the
// first message (for the header, when the caller asks for it first): an
// attempt that gets none in time is cancelled and retried (on another node
// when there is one), a failure for its node's breaker; when every attempt
// times out the call fails with DeadlineExceeded. Once the first message is
// in, the stream lives in the caller's context alone. It does not apply to client-streaming and bidirectional
// calls. For a server-streaming call, errors surface at the first RecvMsg
// rather than at stream creation.
func StreamRetry(p *retry.Policy) grpc.StreamClientInterceptor {
	if p == nil {
		p = &retry.Policy{}
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cfg := parseCallOptions(ctx, opts)
		opts, fin := splitFinish(opts, cfg.finish)
		pol := policyFor(p, cfg)
		var firstWithin time.Duration
		if pol.AttemptTimeout > 0 {
			// Not the retry loop's: its attempt context ends when the
			// attempt's function returns, and a stream outlives that.
			firstWithin = pol.AttemptTimeout
			cp := *pol
			cp.AttemptTimeout = 0
			pol = &cp
		}
		rs := &retryStream{
			ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts,
			policy: pol, route: cfg.route, firstWithin: firstWithin, fin: fin,
		}
		if desc.ServerStreams && !desc.ClientStreams {
			rs.sent = make(chan struct{})
			if fin != nil {
				// A caller that gives up before the attempts start has
				// its callbacks run with its context's end, as gRPC would.
				rs.finStop = context.AfterFunc(ctx, rs.finishUnstarted)
			}
			return rs, nil // opened lazily, at the first RecvMsg or Header
		}
		var (
			cs grpc.ClientStream
			af *attemptFinish
		)
		err := rs.policy.Do(ctx, func(_ context.Context, at retry.Attempt) error {
			a := rs.newAttempt(at.Waited)
			af = fin.attempt()
			var err error
			cs, err = streamer(withAttempt(ctx, a), desc, cc, method, af.opts(opts)...)
			if err != nil {
				return rs.failed(a, err, nil, nil)
			}
			return nil
		})
		if err != nil {
			err = retryResult(ctx, err)
			fin.deliver(err)
			return nil, err
		}
		af.commit()
		return cs, nil
	}
}

// streamRef holds an attempt's stream, for retryStream.last.
type streamRef struct{ cs grpc.ClientStream }

// retryStream is a server-streaming call that retries until its first
// response. The request is buffered by SendMsg (cloned when it is a proto
// message) and replayed on each attempt.
type retryStream struct {
	ctx      context.Context
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption
	policy   *retry.Policy
	route    Route
	// firstWithin is the attempt timeout: how long an attempt may wait for
	// its first message (0: no limit).
	firstWithin time.Duration

	// mu is held through the attempts, which wait for the first response:
	// Context and Trailer read last instead, so that they never block. last
	// is the committed attempt's stream, or the last one's once every
	// attempt failed; nil while attempts run (a failed attempt's context is
	// cancelled, and the call is still live).
	mu        sync.Mutex
	cur       grpc.ClientStream // the current attempt's stream
	last      atomic.Pointer[streamRef]
	started   bool  // the attempts ran; cur or err is final
	err       error // the final error of the attempts
	req       any
	hasReq    bool
	closeSend bool
	// sent is closed once the caller has given the request or closed the
	// send side, or the attempts started, so that RecvMsg can go on.
	sent       chan struct{}
	sentClosed bool
	tried      []string
	release    context.CancelFunc // the committed attempt's context, when it has its own

	fin     *callFinish   // the caller's OnFinish callbacks, or nil
	finStop func() bool   // unregisters finishUnstarted, when fin is set
	pending pendingFinish // decided under mu, run once mu is released

	// While Header runs the attempts before the request was given
	// (headerFirst), s.mu is held and the caller may send from another
	// goroutine: SendMsg and CloseSend then go, under openMu alone, to the
	// open attempt's stream (open), which cannot replay what they sent
	// (sentDirect: its failure is the call's), or, between attempts, are
	// kept for the next attempt (late*).
	openMu      sync.Mutex
	headerFirst bool
	open        grpc.ClientStream
	sentDirect  bool
	lateReq     any
	hasLateReq  bool
	lateClose   bool
}

// sendEarly handles a SendMsg (m, not nil) or CloseSend (m nil) while
// Header runs the attempts without the request; handled is false outside
// that time. It never waits for s.mu.
func (s *retryStream) sendEarly(m any) (handled bool, err error) {
	s.openMu.Lock()
	if !s.headerFirst {
		s.openMu.Unlock()
		return false, nil
	}
	if cs := s.open; cs != nil {
		s.sentDirect = true
		s.openMu.Unlock()
		if m == nil {
			return true, cs.CloseSend()
		}
		return true, cs.SendMsg(m)
	}
	defer s.openMu.Unlock()
	switch {
	case m == nil:
		s.lateClose = true
	case s.hasLateReq:
		return true, &Error{Code: codes.Internal, Err: errors.New("grpcmw: second message on a server-streaming call")}
	default:
		if pm, ok := m.(proto.Message); ok {
			m = proto.Clone(pm)
		}
		s.lateReq, s.hasLateReq = m, true
	}
	return true, nil
}

// takeLate moves what the caller sent between two attempts of a Header
// that runs them into the request the next attempt replays, and, if there
// is still no request, makes cs the stream that SendMsg and CloseSend go
// to; it reports whether it did. s.mu is held.
func (s *retryStream) takeLate(cs grpc.ClientStream) (published bool) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if !s.headerFirst {
		return false
	}
	if s.hasLateReq {
		s.req, s.hasReq = s.lateReq, true
		s.lateReq, s.hasLateReq = nil, false
	}
	if s.lateClose {
		s.closeSend, s.lateClose = true, false
	}
	if s.hasReq {
		return false
	}
	s.open, s.sentDirect = cs, false
	return true
}

// setHeaderFirst marks the time Header runs the attempts without the
// request; at its end, what the caller sent goes through s.mu again, and
// anything kept for an attempt that never came is dropped (the call
// failed). s.mu is held.
func (s *retryStream) setHeaderFirst(on bool) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.headerFirst = on
	if !on {
		s.open, s.lateReq, s.hasLateReq, s.lateClose = nil, nil, false, false
	}
}

// unpublish stops SendMsg and CloseSend going to the attempt's stream and
// reports whether the caller sent on it. s.mu is held.
func (s *retryStream) unpublish() (sentDirect bool) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.open = nil
	return s.sentDirect
}

// pendingFinish is what the caller's OnFinish callbacks are to get, decided
// while s.mu is held and run once it is released, since a callback may use
// the stream: the committed attempt's end (af), or the call's error (over).
type pendingFinish struct {
	af   *attemptFinish
	over bool
	err  error
}

// unlock releases s.mu, then runs the pending OnFinish delivery, if any.
func (s *retryStream) unlock() {
	p := s.pending
	s.pending = pendingFinish{}
	s.mu.Unlock()
	switch {
	case p.af != nil:
		p.af.commit()
	case p.over:
		s.fin.deliver(p.err)
	}
}

// finishUnstarted runs the caller's OnFinish callbacks with the end of its
// context, unless the attempts have started: they run them themselves.
func (s *retryStream) finishUnstarted() {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		s.fin.deliver(status.FromContextError(s.ctx.Err()).Err())
	}
}

// over ends the stream with err, for the caller's OnFinish callbacks (once
// s.mu is released): the committed attempt's end, when there is one,
// delivers its own. s.mu is held.
func (s *retryStream) over(err error) { s.settle(pendingFinish{over: true, err: err}) }

// settle decides what the caller's OnFinish callbacks get, if there are
// any; finishUnstarted no longer runs them. s.mu is held.
func (s *retryStream) settle(p pendingFinish) {
	if s.fin != nil {
		s.finStop()
		s.pending = p
	}
}

func (s *retryStream) newAttempt(waited time.Duration) *attemptInfo {
	return &attemptInfo{caller: s.ctx, route: s.route, tried: s.tried, partition: -1, waited: waited}
}

// failed records the node of a failed attempt and wraps its error for the
// retry loop. timedOut is the attempt's context when its own timeout ended
// it, else nil: its error then says so (DeadlineExceeded, retried) whatever
// the layers below made of the cancellation, unless the caller's context
// ended too.
func (s *retryStream) failed(a *attemptInfo, err error, trailer metadata.MD, timedOut context.Context) error {
	if node := a.getNode(); node != "" {
		s.tried = append(s.tried, node)
	}
	if timedOut != nil && s.ctx.Err() == nil {
		err = &Error{Code: codes.DeadlineExceeded, Node: a.getNode(), Err: fmt.Errorf("%w: %w", errNoFirstMessage, err)}
		return decide(s.ctx, timedOut, err, trailer, a, s.policy)
	}
	return decide(s.ctx, nil, err, trailer, a, s.policy)
}

// attemptContext returns the context of one attempt of a server stream and
// its end: with an attempt timeout, a context of its own that a timer
// cancels unless end(true) stops it first, as the first message arrives.
// end(keep) returns the attempt's context, cancelled, when the timer ended
// it, and nil when the attempt was in time; the attempt's context is
// released unless the stream keeps it (keep, and in time).
func (s *retryStream) attemptContext() (actx context.Context, end func(keep bool) (timedOut context.Context)) {
	if s.firstWithin <= 0 {
		return s.ctx, func(bool) context.Context { return nil }
	}
	actx, cancel := context.WithCancel(s.ctx)
	t := time.AfterFunc(s.firstWithin, cancel)
	return actx, func(keep bool) context.Context {
		if !t.Stop() {
			cancel()
			return actx // the timer fired: cancelled
		}
		if keep {
			s.release = cancel // when the stream ends
		} else {
			cancel()
		}
		return nil
	}
}

// errNoFirstMessage is the cause of an attempt that got no first message
// within its attempt timeout.
var errNoFirstMessage = errors.New("grpcmw: no first message within the attempt timeout")

// start runs the attempts: open a stream, replay the request, and wait for
// the first response with first (RecvMsg into the caller's message, or
// Header). It returns first's result for the committed attempt. s.mu is
// held.
func (s *retryStream) start(first func(cs grpc.ClientStream) error) error {
	s.started = true
	s.markSent() // a RecvMsg waiting for the request reads this stream now
	var firstErr error
	err := s.policy.Do(s.ctx, func(_ context.Context, at retry.Attempt) error {
		a := s.newAttempt(at.Waited)
		if at.Number > 1 {
			clearCallerMetadata(s.opts)
		}
		actx, end := s.attemptContext()
		af := s.fin.attempt()
		cs, err := s.streamer(withAttempt(actx, a), s.desc, s.cc, s.method, af.opts(s.opts)...)
		if err != nil { // opening failed, or the attempt timed out while queued
			s.cur = nil // no trailer of this attempt's, nor an earlier one's
			return s.failed(a, err, nil, end(false))
		}
		published := s.takeLate(cs)
		if s.hasReq {
			if err := cs.SendMsg(s.req); err != nil && err != io.EOF {
				end(false)
				return retry.Permanent(err)
			}
		}
		if s.closeSend {
			_ = cs.CloseSend()
		}
		err = first(cs)
		s.cur = cs // also on failure: Trailer reports the last attempt's
		timedOut := end(err == nil)
		if (err == nil || err == io.EOF) && timedOut == nil {
			s.last.Store(&streamRef{cs})
			firstErr = err
			s.settle(pendingFinish{af: af}) // its end is the call's
			return nil                      // a published stream stays so until Header returns
		}
		if published && s.unpublish() {
			// The caller's request went to this stream alone: no further
			// attempt could replay it.
			return retry.Permanent(s.failed(a, err, cs.Trailer(), timedOut))
		}
		return s.failed(a, err, cs.Trailer(), timedOut)
	})
	if err != nil {
		if s.cur != nil { // the last failed attempt's, for Trailer
			s.last.Store(&streamRef{s.cur})
		}
		s.err = retryResult(s.ctx, err)
		s.over(s.err)
		return s.err
	}
	return firstErr
}

// SendMsg buffers the request until the stream opens.
func (s *retryStream) SendMsg(m any) error {
	if handled, err := s.sendEarly(m); handled {
		return err
	}
	s.mu.Lock()
	if s.started {
		// Not under the lock: gRPC may finish the stream inside SendMsg
		// and run OnFinish callbacks that use the stream.
		cur, err := s.cur, s.err
		s.unlock()
		if cur == nil {
			return err
		}
		return cur.SendMsg(m)
	}
	defer s.unlock()
	if s.hasReq {
		// An error of the client's own aborts the stream, as gRPC's
		// SendMsg does: later calls report it and run no attempt.
		s.started = true
		s.err = &Error{Code: codes.Internal, Err: errors.New("grpcmw: second message on a server-streaming call")}
		s.over(s.err)
		return s.err
	}
	if pm, ok := m.(proto.Message); ok {
		m = proto.Clone(pm)
	}
	s.req, s.hasReq = m, true
	s.markSent()
	return nil
}

// markSent notes that the attempts may start. s.mu is held.
func (s *retryStream) markSent() {
	if !s.sentClosed {
		s.sentClosed = true
		close(s.sent)
	}
}

// awaitRequest waits, without holding s.mu, until the caller has given
// the request or closed the send side (or Header started the attempts):
// gRPC lets a caller's RecvMsg in one goroutine come before its SendMsg in
// another, and the attempts replay the request. It returns the caller's
// context's error, as a status, if that ends first.
func (s *retryStream) awaitRequest() error {
	select {
	case <-s.sent:
		return nil
	default:
	}
	select {
	case <-s.sent:
		return nil
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	}
}

// CloseSend is noted until the stream opens.
func (s *retryStream) CloseSend() error {
	if handled, err := s.sendEarly(nil); handled {
		return err
	}
	s.mu.Lock()
	if s.started {
		cur := s.cur
		s.mu.Unlock()
		if cur == nil {
			return nil
		}
		return cur.CloseSend()
	}
	defer s.mu.Unlock()
	s.closeSend = true
	s.markSent()
	return nil
}

// RecvMsg opens the stream on first use, retrying until a first message
// arrives; later calls read the committed stream.
func (s *retryStream) RecvMsg(m any) error {
	if err := s.awaitRequest(); err != nil {
		return err
	}
	s.mu.Lock()
	if !s.started {
		defer s.unlock()
		return s.start(func(cs grpc.ClientStream) error { return cs.RecvMsg(m) })
	}
	cur, err, release := s.cur, s.err, s.release
	s.mu.Unlock()
	if err != nil {
		return err
	}
	err = cur.RecvMsg(m)
	if err != nil && release != nil {
		release() // the stream is over: its attempt context goes too
	}
	return err
}

// Header opens the stream if needed and returns its header.
// A caller may ask for the header before giving the request (a server may
// send its header first): unlike RecvMsg, Header does not wait for the
// request. A request given later, on this goroutine or on another while
// Header waits, goes to the stream the attempt opened and is not replayed:
// that attempt's failure is the call's.
func (s *retryStream) Header() (metadata.MD, error) {
	s.mu.Lock()
	if !s.started {
		if !s.hasReq && !s.closeSend {
			s.setHeaderFirst(true)
		}
		var md metadata.MD
		err := s.start(func(cs grpc.ClientStream) error {
			var err error
			if md, err = cs.Header(); err == nil && md == nil {
				// gRPC's Header returns neither header nor error for a
				// stream that ended before its header (a trailers-only
				// status): RecvMsg, with no message left to read, says how
				// it ended, so that a failure is retried.
				return cs.RecvMsg(nil)
			}
			return err
		})
		s.setHeaderFirst(false)
		s.unlock()
		if err == io.EOF { // ended with an OK status: RecvMsg reports it
			err = nil
		}
		return md, err
	}
	cur, err := s.cur, s.err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return cur.Header()
}

// Trailer returns the trailer of the committed (or last failed) attempt's
// stream, nil while attempts run. It does not wait for them.
func (s *retryStream) Trailer() metadata.MD {
	if r := s.last.Load(); r != nil {
		return r.cs.Trailer()
	}
	return nil
}

// Context returns the committed (or last failed) attempt's stream context,
// or the caller's while attempts run. It does not wait for them.
func (s *retryStream) Context() context.Context {
	if r := s.last.Load(); r != nil {
		return r.cs.Context()
	}
	return s.ctx
}
