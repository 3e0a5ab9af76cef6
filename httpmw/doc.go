// Package httpmw is rampart's http.RoundTripper middleware: one
// RoundTripper per policy (Tracing, RateLimit, Retry, Failover, Breaker,
// Bulkhead), Chain to compose any of them in any order, and New, the preset
// that builds the canonical chain around the caller's transport:
//
//	tracing → rate limit → retry → failover → breaker per node → bulkhead per node → transport
//
// Most callers want New (or NewClient) with a few options:
//
//	rt := httpmw.New(http.DefaultTransport,
//		httpmw.WithTracer(tracer),
//		httpmw.WithService(httpmw.Service{Host: "orders", Topology: watcher, Port: 8080}),
//	)
//	req = req.WithContext(httpmw.WithPartitionKey(ctx, customerID))
//
// # Contract
//
// Every RoundTripper here follows net/http's contract to the letter: the
// caller's request is cloned, never modified (its header map included); a 5xx
// is a response, not an error, unless the retry layer gave up on it; request
// bodies are replayed only through GetBody or a bounded buffer; every
// discarded response is drained (bounded) and closed; and every exit closes
// the request body.
//
// Classification happens in one place: connection errors, attempt timeouts
// and 5xx other than 501 are node failures and retryable; 429 and 503 are
// retryable and honour Retry-After, per node: failover sends that node
// nothing until its Retry-After is over, and a call waits for it only when
// no other candidate is free (a write confined to the primary, a host
// without failover); other 4xx count as success for the
// breaker and are never retried; the caller's cancellation is neutral and
// never retried.
//
// Errors match with errors.Is: breaker.ErrOpen, bulkhead.ErrFull,
// ratelimit.ErrLimited, retry.ErrExhausted (a *retry.ExhaustedError wrapping
// the last cause, for example a *StatusError), ErrNoHealthyNode (a
// *NodeError), ErrNoPartitionKey and ErrNoTopology. No error, span or metric
// made here contains the URL's path or query or a header value. (http.Client
// itself wraps RoundTripper errors in a *url.Error that quotes the URL.)
//
// # Per-call state
//
// The layers of one chain share one small per-call record, placed in the
// request's context by the outermost rampart layer: it is the context of the
// requests sent below (so a whole logical call costs about one allocation),
// and holds the nodes already tried, the tracing state and the per-request
// overrides (WithPartitionKey, WithWriteRetry, WithWriteFailover,
// WithMaxAttempts).
//
// # Experimental
//
// This package is new; its API may still change before rampart's first
// release.
package httpmw
