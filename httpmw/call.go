package httpmw

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/sampling"
)

// overrides are the per-request settings a caller puts in the request's
// context with WithPartitionKey, WithWriteRetry, WithWriteFailover and
// WithMaxAttempts.
type overrides struct {
	key           string
	maxAttempts   int32
	hasKey        bool
	retryWrite    bool
	failoverWrite bool
}

type overridesKey struct{}

func overridesFrom(ctx context.Context) overrides {
	if o, ok := ctx.Value(overridesKey{}).(*overrides); ok {
		return *o
	}
	return overrides{}
}

func withOverride(ctx context.Context, set func(*overrides)) context.Context {
	o := overridesFrom(ctx)
	set(&o)
	return context.WithValue(ctx, overridesKey{}, &o)
}

// WithPartitionKey returns a context that makes failover route the request
// by key: the key's hash picks the partition of the request's logical host.
// It takes precedence over the configured partition header.
func WithPartitionKey(ctx context.Context, key string) context.Context {
	return withOverride(ctx, func(o *overrides) { o.key, o.hasKey = key, true })
}

// WithWriteRetry returns a context that lets the retry layer retry a
// request whose method is not idempotent (POST, PATCH) although it has no
// Idempotency-Key header: the caller vouches that repeating it is safe.
func WithWriteRetry(ctx context.Context) context.Context {
	return withOverride(ctx, func(o *overrides) { o.retryWrite = true })
}

// WithWriteFailover returns a context that lets failover send a write (any
// method other than GET, HEAD, OPTIONS and TRACE) to a replica when the
// partition's primary cannot take it. Without it writes go to the primary
// only.
func WithWriteFailover(ctx context.Context) context.Context {
	return withOverride(ctx, func(o *overrides) { o.failoverWrite = true })
}

// WithMaxAttempts returns a context that caps the number of attempts of the
// request, the first one included, at n (n >= 1). It can only lower the
// retry layer's MaxAttempts, never raise it past the policy.
func WithMaxAttempts(ctx context.Context, n int) context.Context {
	if n < 1 {
		n = 1
	}
	n = min(n, math.MaxInt32)
	return withOverride(ctx, func(o *overrides) { o.maxAttempts = int32(n) })
}

// isRead reports whether method is safe, and therefore served by replicas.
func isRead(method string) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// isIdempotent reports whether a request may be repeated without a caller's
// opt-in: idempotent methods, or an Idempotency-Key header.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return hasHeader(r.Header, "Idempotency-Key") || hasHeader(r.Header, "X-Idempotency-Key")
}

func hasHeader(h http.Header, canonicalKey string) bool {
	vs := h[canonicalKey]
	return len(vs) > 0 && vs[0] != ""
}

type callKey struct{}

// maxTried is the number of nodes tried that a call holds inline; the
// nodes of later attempts, if any, go to an overflow list.
const maxTried = 3

// call is the state of one logical call shared by the rampart layers of a
// chain. It is created once, by the outermost rampart layer that needs it,
// and is itself the context of the requests rampart sends below that layer:
// it embeds the parent context and answers Value for its own key, so that a
// whole call costs one allocation (the request and URL clones are inline).
//
// A call is used by one goroutine at a time: the layers of one RoundTrip run
// in sequence. It is never pooled, not even after the response body is
// closed: besides the caller's resp.Request, net/http keeps using it then.
// The HTTP/1 readLoop cancels the transport's child context after handing
// the caller EOF (transport.go, rc.treq.cancel → removeChild → c.Done()); a
// dial that outlives the request reads its values (getConn's
// context.WithoutCancel); the writeLoop, which neither RoundTrip nor
// Body.Close joins, may still read the request and its header map
// (golang/go#30597). TestSentRequestsNeverReused guards this.
type call struct {
	context.Context // parent: the caller's context, or the tracer's

	cur *http.Request // the request of the current attempt, owned by the call

	req http.Request // storage of the first attempt's request
	url url.URL      // storage of its URL

	ov overrides

	// The context a Retry layer runs its attempts under: the caller's,
	// with whatever the caller's own middleware above that layer added (a
	// value, a deadline). Nil outside a Retry layer. Its end is the
	// caller's giving up; an attempt's own timeout is not.
	caller context.Context

	// Failover's memory of this call: the nodes already tried, in order,
	// the first maxTried inline and the rest (after as many failed
	// attempts) in more.
	tried [maxTried]string
	more  *[]string // a pointer, and 3 inline: the call fits a 768-byte size class
	node  string    // the node of the current attempt, "" if not routed
	nodes []string  // its partition's candidates, primary first (read-only)
	svc   *service  // the service that routed it; its Failover is svc.fo

	// The breaker failover (fo, of the current attempt) last looked up in
	// its group, for the breaker layer.
	br *breaker.Breaker // named by its node

	partition int // partition of the current attempt, -1 if not routed

	// Set by a Tracing layer for the duration of its RoundTrip; the
	// sampling call and its context are pooled and never reach a request.
	trace   *sampling.Call // its Metrics are the call's metrics
	tctx    context.Context
	att     sampling.Attempt
	tpVal   [1]string // the first attempt's traceparent header value
	tpBuf   [55]byte  // backs tpVal[0]; written once per call
	attOpen bool
	// attAdopt says the open attempt was started by Tracing, which found
	// no retry layer right below it: a retry loop further down (behind the
	// caller's middleware) adopts it as its first attempt.
	attAdopt bool
	plainTP  bool
	tpUsed   bool

	finished    bool  // the creating layer has returned; the call is over
	primaryOnly bool  // the current attempt is a write confined to the primary
	ntried      uint8 // entries of tried in use (packed here: the call fits a 768-byte size class)
}

// callerErr is the error of the caller's context, nil while the caller
// waits: the context the retry loop runs under or, outside a retry loop,
// where no attempt has a timeout of its own, ctx: the context of the
// request at hand, with whatever the caller's own middleware above the
// layer added (a deadline).
func (c *call) callerErr(ctx context.Context) error {
	if c.caller != nil {
		return c.caller.Err()
	}
	return ctx.Err()
}

// callerGone reports whether an attempt that returned err, sent with a
// request whose context is ctx, ended because the caller gave up: the
// caller's context is done (callerErr) or, outside a retry loop, where no
// attempt has a timeout of its own, err is a context's error, also one of
// a context derived below ctx (a deadline of the caller's middleware).
func (c *call) callerGone(ctx context.Context, err error) bool {
	if c.callerErr(ctx) != nil {
		return true
	}
	return c.caller == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// Value answers the call's own key and defers to the parent otherwise.
func (c *call) Value(key any) any {
	if key == (callKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// liveCall returns the call that r belongs to, or nil if r is not part of a
// call in progress (the first rampart layer, a request built by the caller
// from the context of a finished call, or another request sent from within
// the call, such as a token fetch). r belongs to the call when it is the
// call's current request, or a copy of it for the same URL with a context
// derived from its own: what the caller's own middleware between two
// rampart layers makes with WithContext or Clone when it adds a value, a
// span, a timeout or a header. Layers then work on a clone of r, and the
// call's failover memory carries over.
func liveCall(r *http.Request) *call {
	ctx := r.Context()
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil || c.finished || c.cur == nil {
		return nil
	}
	if r != c.cur {
		if !sameURL(r.URL, c.cur.URL) {
			return nil // another request
		}
		if c.cur.Context() != ctx {
			// The derived context may carry overrides of its own.
			c.ov = overridesFrom(ctx)
		}
	}
	return c
}

// sameURL reports whether a and b are the same URL: the same pointer (a
// WithContext copy) or equal values (a Clone's copy).
func sameURL(a, b *url.URL) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.User.String() != b.User.String() {
		return false
	}
	ca, cb := *a, *b
	ca.User, cb.User = nil, nil
	return ca == cb
}

// newCall starts a call for the caller's request r with parent as the
// call's context, and clones r into the call's own storage. The caller's
// request is never modified. The header map is shared until a layer needs
// to change it (see ownHeader).
func newCall(parent context.Context, r *http.Request) *call {
	c := &call{Context: parent, partition: -1}
	c.ov = overridesFrom(parent)
	c.req = *r.WithContext(c) // WithContext inlines: no second allocation
	if r.URL != nil {
		c.url = *r.URL
		c.req.URL = &c.url
	}
	c.cur = &c.req
	return c
}

// joinCall returns the call r belongs to and the request a layer works on,
// which the call owns: for a request outside any live call, a new call and
// its copy of r (created is true, and the layer ends the call, setting
// finished, when it returns); else the live call and r, cloned if the call
// does not own it.
func joinCall(r *http.Request) (c *call, owned *http.Request, created bool) {
	if c = liveCall(r); c == nil {
		c = newCall(r.Context(), r)
		return c, c.cur, true
	}
	return c, c.own(r), false
}

// owned reports whether r is the call's current request, which rampart
// layers may modify in place.
func (c *call) owned(r *http.Request) bool { return c != nil && r == c.cur }

// own returns r if the call owns it, else a clone of r that becomes the
// call's current request.
func (c *call) own(r *http.Request) *http.Request {
	if !c.owned(r) {
		r = cloneRequest(r, r.Context())
		c.cur = r
	}
	return r
}

// attemptReq holds a request and its URL in one allocation.
type attemptReq struct {
	req http.Request
	url url.URL
}

// cloneRequest returns a shallow clone of r with its own URL and context
// ctx, in one allocation. The header map and body are shared.
func cloneRequest(r *http.Request, ctx context.Context) *http.Request {
	a := new(attemptReq)
	a.req = *r.WithContext(ctx)
	if r.URL != nil {
		a.url = *r.URL
		a.req.URL = &a.url
	}
	return &a.req
}

// wasTried reports whether node was already tried in this call.
func (c *call) wasTried(node string) bool {
	if slices.Contains(c.tried[:c.ntried], node) {
		return true
	}
	return c.more != nil && slices.Contains(*c.more, node)
}

// markTried records node as the latest tried.
func (c *call) markTried(node string) {
	if c.ntried < maxTried {
		c.tried[c.ntried] = node
		c.ntried++
		return
	}
	if c.more == nil {
		c.more = new([]string)
	}
	*c.more = append(*c.more, node)
}

// lastTried returns the node tried latest, or "" if none was.
func (c *call) lastTried() string {
	if c.more != nil {
		return (*c.more)[len(*c.more)-1]
	}
	if c.ntried > 0 {
		return c.tried[c.ntried-1]
	}
	return ""
}
