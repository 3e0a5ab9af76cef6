package httpmw

import "net/http"

// Middleware wraps a RoundTripper in another one. The constructors of this
// package, bound to their options, are Middlewares (see BreakerMiddleware,
// RetryMiddleware, FailoverMiddleware and the like), and so is any func of
// this shape the caller writes.
type Middleware func(http.RoundTripper) http.RoundTripper

// Chain returns next wrapped in mws: the first middleware is the outermost,
// so Chain(t, a, b) sends a request through a, then b, then t. A nil next
// means http.DefaultTransport; nil middlewares are skipped.
func Chain(next http.RoundTripper, mws ...Middleware) http.RoundTripper {
	rt := ensureHTTP(next)
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			rt = mws[i](rt)
		}
	}
	return rt
}

// RoundTripperFunc is a function that is a RoundTripper, for tests and
// small adapters.
type RoundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(r).
func (f RoundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
