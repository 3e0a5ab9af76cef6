package httpmw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
)

// Retry runs each request as a loop of attempts under a retry.Policy (see
// WithRetry), with one retry budget per destination if WithRetryBudgets is
// given.
//
// What is retried: connection errors, attempt timeouts, 5xx responses other
// than 501, and 429; a 429 or 503 with a Retry-After header (delta-seconds
// or HTTP-date) waits at least that long, capped by the policy's
// MaxPushback, unless failover has another node for the next attempt: the
// Retry-After is about the node that sent it, so failover keeps attempts
// away from that node until it is over, and a read with a free replica
// retries there after the usual backoff. Other responses (2xx-4xx, 501) are returned as they are, and
// a cancelled or expired caller context stops the loop at once.
//
// What may be retried: GET, HEAD, OPTIONS, TRACE, PUT and DELETE; POST,
// PATCH and other methods only with an Idempotency-Key (or
// X-Idempotency-Key) header or the caller's opt-in (WithWriteRetry). A
// request that may not be retried is sent once and its response returned
// untouched, whatever its status. WithMaxAttempts lowers the attempt count
// per request.
//
// Bodies are replayed byte for byte: through GetBody when the request has
// one, else from a buffer of at most the body limit (WithBodyLimit) filled
// once; a larger body is sent once and not retried. A retry never sends an
// empty body.
//
// Every discarded response is drained (bounded) and closed. When the loop
// gives up, the error is the retry package's *retry.ExhaustedError
// (matching retry.ErrExhausted when attempts or budget ran out) wrapping the
// last cause: a transport error, or a *StatusError whose response has
// already been drained and closed.
//
// The policy's AttemptTimeout is applied here rather than by the retry
// package, so that the timeout of a successful attempt stays in force until
// its response body is closed or read to the end, and not a moment longer.
//
// Create it with NewRetry (or RetryMiddleware); the zero Retry is not
// usable. Retry is safe for concurrent use.
type Retry struct {
	next           http.RoundTripper
	policy         retry.Policy // AttemptTimeout cleared: applied here
	maxAttempts    int
	attemptTimeout time.Duration
	budgets        *retry.Budgets
	bodyLimit      int64
	now            func() time.Time
}

var _ http.RoundTripper = (*Retry)(nil)

// NewRetry returns the retry middleware around next (nil means
// http.DefaultTransport), configured by WithRetry, WithRetryBudgets,
// WithBodyLimit and WithClock.
func NewRetry(next http.RoundTripper, opts ...Option) *Retry {
	return newRetry(next, newConfig(opts))
}

func newRetry(next http.RoundTripper, cfg *config) *Retry {
	rt := &Retry{next: ensureHTTP(next), budgets: cfg.budgets, bodyLimit: cfg.bodyLimit, now: cfg.now}
	if cfg.policy != nil {
		rt.policy = *cfg.policy
	}
	rt.policy = *retry.NewPolicy(rt.policy) // its defaults filled in, its clock kept
	rt.attemptTimeout = rt.policy.AttemptTimeout
	rt.policy.AttemptTimeout = 0
	rt.maxAttempts = rt.policy.MaxAttempts
	if rt.maxAttempts <= 0 {
		rt.maxAttempts = retry.DefaultMaxAttempts
	}
	rt.policy.MaxAttempts = rt.maxAttempts
	return rt
}

// RoundTrip sends r, retrying as described on Retry.
func (rt *Retry) RoundTrip(r *http.Request) (*http.Response, error) {
	c, r, created := joinCall(r)
	resp, err := rt.roundTrip(c, r)
	if created {
		c.finished = true
	}
	return resp, err
}

func (rt *Retry) roundTrip(c *call, r *http.Request) (*http.Response, error) {
	// The attempts run under r's context: the call's own, or one the
	// caller's middleware between an outer rampart layer and this one
	// derived from it, whose values and deadline every attempt keeps.
	ctx := r.Context()
	prevCaller := c.caller
	c.caller = ctx
	defer func() { c.caller = prevCaller }()
	maxAttempts := rt.maxAttempts
	if n := int(c.ov.maxAttempts); n > 0 && n < maxAttempts {
		maxAttempts = n
	}
	if maxAttempts <= 1 || !(isIdempotent(r) || c.ov.retryWrite) {
		return rt.single(c, r)
	}

	// Body replay: GetBody, or a bounded buffer filled once.
	var buf []byte
	hasBody := r.Body != nil && r.Body != http.NoBody
	if hasBody && r.GetBody == nil {
		// Reading the body does not watch ctx: closing it when ctx ends
		// unblocks the read, as net/http does with a request's body.
		body := r.Body
		stop := context.AfterFunc(ctx, func() { _ = body.Close() })
		b, whole, err := bufferBody(body, rt.bodyLimit)
		if !stop() { // ctx ended while reading: the body is closed
			return nil, ctx.Err()
		}
		if err != nil {
			_ = r.Body.Close()
			return nil, err
		}
		if !whole {
			// Too large to replay: send it once, buffered head first.
			r.Body = &prefixBody{Reader: io.MultiReader(bytes.NewReader(b), r.Body), closer: r.Body}
			return rt.single(c, r)
		}
		_ = r.Body.Close()
		buf = b
		r.Body = newBytesBody(buf)
		r.GetBody = buf2GetBody(buf)
	}

	var budget *retry.Budget
	if rt.budgets != nil {
		budget = rt.budgets.Get(hostKey(r.URL.Host))
	}

	// The request as it entered, before inner layers rewrite it in place.
	base := *r
	var baseURL = *r.URL

	pol := &rt.policy
	var capped retry.Policy
	if maxAttempts != rt.maxAttempts {
		capped = rt.policy
		capped.MaxAttempts = maxAttempts
		pol = &capped
	}

	// The route a failover layer above this one chose, which every attempt
	// keeps; without one, a failover layer below routes each attempt.
	aboveNode, aboveNodes, aboveSvc, abovePrimaryOnly := c.node, c.nodes, c.svc, c.primaryOnly
	movable := aboveSvc == nil // the next attempt may go to another node

	var resp *http.Response
	sent := false // an attempt took r's body, which the layers below close
	err := pol.DoWithBudget(ctx, budget, func(ctx context.Context, a retry.Attempt) error {
		sent = true
		actx := ctx
		var cancel context.CancelFunc
		if rt.attemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, rt.attemptTimeout)
		}
		req := r
		switch {
		case a.Number > 1:
			req = cloneFrom(&base, &baseURL, actx)
			if hasBody {
				body, err := base.GetBody()
				if err != nil {
					if cancel != nil {
						cancel()
					}
					return retry.Permanent(err)
				}
				req.Body = body
			}
			c.cur = req
		case cancel != nil:
			req = r.WithContext(actx)
			c.cur = req
		}
		c.node, c.nodes, c.svc, c.primaryOnly = aboveNode, aboveNodes, aboveSvc, abovePrimaryOnly
		res, err := sendAttempt(c, rt.next, req, a.Waited, true)
		if err != nil {
			if cancel != nil {
				cancel()
			}
			return rt.classifyErr(c, err, movable)
		}
		_, retryable := classifyStatus(res.StatusCode)
		if !retryable {
			if cancel != nil {
				res.Body = withCancel(res.Body, cancel)
			}
			resp = res
			return nil
		}
		code := res.StatusCode
		var (
			pb   time.Duration
			hasP bool
		)
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			pb, hasP = retryAfter(res.Header, rt.now)
		}
		discard(res)
		if cancel != nil {
			cancel()
		}
		serr := statusError(code)
		if hasP && movable && c.svc != nil && c.node != "" && pol.MaxPushback >= 0 {
			// The node asked to be left alone for pb: failover keeps the
			// next attempts away from it, and the loop waits only if no
			// other candidate is free sooner.
			pb = c.svc.fo.throttled(c, min(pb, pol.MaxPushback))
			if pb == 0 {
				return serr
			}
		}
		if hasP {
			return retry.Pushback(serr, pb)
		}
		return serr
	})
	if err != nil {
		if !sent { // the context was done before the first attempt
			closeRequestBody(r)
		}
		if c.trace != nil && errors.Is(err, retry.ErrBudget) {
			c.trace.Rejected(sampling.PolicyBudget, err)
			c.trace.Metrics().BudgetRefused(c.tctx, c.node, c.partition)
		}
		return nil, err
	}
	return resp, nil
}

// single sends r once with the attempt timeout, if any, and returns what the
// next RoundTripper returned, a retryable status included.
func (rt *Retry) single(c *call, r *http.Request) (*http.Response, error) {
	if rt.attemptTimeout <= 0 {
		return sendAttempt(c, rt.next, r, 0, true)
	}
	actx, cancel := context.WithTimeout(r.Context(), rt.attemptTimeout)
	r = r.WithContext(actx)
	c.cur = r
	res, err := sendAttempt(c, rt.next, r, 0, true)
	if err != nil {
		cancel()
		return nil, err
	}
	res.Body = withCancel(res.Body, cancel)
	return res, nil
}

// classifyErr turns an attempt's transport error into what the retry loop
// needs: retryable (connection errors, attempt timeouts, a rejection by a
// node's breaker or bulkhead when failover below can pick another node,
// movable) or permanent (caller cancellation, local rejections, routing
// errors).
func (rt *Retry) classifyErr(c *call, err error, movable bool) error {
	if c.callerErr(c.Context) != nil { // c.caller is set: the loop runs
		return retry.Permanent(err) // the caller's context: never retried
	}
	if !retryableError(err) {
		return retry.Permanent(err)
	}
	if (errors.Is(err, breaker.ErrOpen) || errors.Is(err, bulkhead.ErrFull)) && (!movable || c.node == "" || c.primaryOnly) {
		// Without failover below (none, or one above that fixed the node
		// of every attempt) or for a write confined to the primary, the
		// next attempt would meet the same node: fail fast.
		return retry.Permanent(err)
	}
	return err
}

// retryableError reports whether an error returned by the layers below may
// be retried at all.
func retryableError(err error) bool {
	switch {
	case errors.Is(err, ErrNoHealthyNode),
		errors.Is(err, ErrNoPartitionKey),
		errors.Is(err, ErrNoTopology),
		errors.Is(err, ratelimit.ErrLimited),
		errors.Is(err, context.Canceled):
		return false
	}
	return true
}

// Preallocated status errors for the common retryable codes, so the failure
// path does not allocate them.
var statusErrors = func() map[int]*StatusError {
	m := make(map[int]*StatusError)
	for _, code := range []int{429, 500, 502, 503, 504} {
		m[code] = &StatusError{Code: code}
	}
	return m
}()

func statusError(code int) error {
	if e := statusErrors[code]; e != nil {
		return e
	}
	return &StatusError{Code: code}
}

// cloneFrom returns a fresh copy of base, with its own copy of u, under ctx.
func cloneFrom(base *http.Request, u *url.URL, ctx context.Context) *http.Request {
	a := new(attemptReq)
	a.req = *base.WithContext(ctx)
	a.url = *u
	a.req.URL = &a.url
	return &a.req
}

// bufferBody reads body up to limit bytes. whole reports that the body
// ended within the limit; otherwise b holds the limit+1 bytes read so far
// and the rest is still in body.
func bufferBody(body io.Reader, limit int64) (b []byte, whole bool, err error) {
	b, err = io.ReadAll(io.LimitReader(body, min(limit, math.MaxInt64-1)+1)) // limit+1 must not wrap
	if err != nil {
		return nil, false, err
	}
	return b, int64(len(b)) <= limit, nil
}

// bytesBody is a replayable request body over a buffer.
type bytesBody struct{ bytes.Reader }

func newBytesBody(b []byte) *bytesBody {
	bb := new(bytesBody)
	bb.Reset(b)
	return bb
}

// Close does nothing: the buffer needs no release.
func (*bytesBody) Close() error { return nil }

func buf2GetBody(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return newBytesBody(b), nil }
}

// prefixBody is a body made of a buffered head and the unread rest of the
// caller's body, which it closes.
type prefixBody struct {
	io.Reader
	closer io.Closer
}

func (p *prefixBody) Close() error { return p.closer.Close() }

// withCancel returns body, which releases the attempt's timeout cancel when
// it is closed or read to its end. The body of a 101 Switching Protocols
// response is also the connection's writer, and callers type-assert it as
// an io.ReadWriteCloser: the result keeps that.
func withCancel(body io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		return &cancelRWBody{cancelBody{ReadCloser: rwc, cancel: cancel}, rwc}
	}
	return &cancelBody{ReadCloser: body, cancel: cancel}
}

// cancelRWBody is a cancelBody that writes too.
type cancelRWBody struct {
	cancelBody
	w io.Writer
}

func (b *cancelRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// CloseWrite half-closes the upgraded connection, as net/http's own 101
// body does (httputil.ReverseProxy relies on it): it forwards to the body,
// or reports http.ErrNotSupported if the body cannot.
func (b *cancelRWBody) CloseWrite() error {
	if cw, ok := b.w.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("httpmw: CloseWrite: %w", http.ErrNotSupported)
}

// cancelBody releases an attempt's timeout when the response body is closed
// or read to its end.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.cancel()
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
