package httpmw

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/internal/brkobs"
	"github.com/rampart-go/rampart/internal/deftransport"
)

// New returns next wrapped in the canonical chain, outermost first:
//
//	tracing (WithTracer) → rate limit (WithRateLimit) → retry → failover
//	(WithService) → breaker per node → bulkhead per node → next
//
// When next is an *http.Transport (http.DefaultTransport for a nil next) and
// services are configured, New puts it in a ServiceTransport for their hosts
// (unless its TLS config names a server already), so that https requests
// routed to node addresses keep verifying the logical host's certificate.
// Their connections are then pooled in the ServiceTransport's clones of
// next: close idle connections through the returned RoundTripper. Give any
// other next transport that care yourself.
//
// Tracing, rate limit and failover are present only when configured; retry,
// breaker and bulkhead always are, with their packages' defaults unless
// WithRetry, WithBreakers and WithBulkheads say otherwise. Failover and
// breaker share one breaker group, so failover skips nodes whose breaker is
// open. A nil next means http.DefaultTransport (or the transport given with
// WithTransport).
//
// The result is safe for concurrent use.
func New(next http.RoundTripper, opts ...Option) http.RoundTripper {
	cfg := newConfig(opts)
	if next == nil {
		next = cfg.base
	}
	if cfg.breakers == nil {
		cfg.breakers = breaker.NewGroup(breaker.Settings{}, 0)
	}
	if cfg.tracer != nil {
		brkobs.Observe(cfg.breakers, cfg.tracer.t.Metrics())
	}
	rt := verifyLogicalNames(ensureHTTP(next), cfg)
	rt = newBulkhead(rt, cfg)
	rt = newBreaker(rt, cfg)
	if len(cfg.services) > 0 {
		rt = newFailover(rt, cfg)
	}
	rt = newRetry(rt, cfg)
	if cfg.limiter != nil {
		rt = newRateLimit(rt, cfg)
	}
	if cfg.tracer != nil {
		rt = newTracing(rt, cfg)
	}
	return rt
}

// NewClient returns an *http.Client whose transport is New(nil, opts...):
// the canonical chain around http.DefaultTransport, or around the transport
// given with WithTransport.
//
// Note that http.Client wraps transport errors in a *url.Error that quotes
// the request URL; rampart's own errors never contain it.
func NewClient(opts ...Option) *http.Client {
	return &http.Client{Transport: New(nil, opts...)}
}

// WithTransport sets the transport that New and NewClient wrap when their
// next is nil. A nil rt is ignored.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *config) {
		if rt != nil {
			c.base = rt
		}
	}
}

// BreakerMiddleware returns NewBreaker bound to opts, for Chain.
func BreakerMiddleware(opts ...Option) Middleware {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newBreaker(next, cfg) }
}

// BulkheadMiddleware returns NewBulkhead bound to opts, for Chain.
func BulkheadMiddleware(opts ...Option) Middleware {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newBulkhead(next, cfg) }
}

// RetryMiddleware returns NewRetry bound to opts, for Chain.
func RetryMiddleware(opts ...Option) Middleware {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newRetry(next, cfg) }
}

// RateLimitMiddleware returns NewRateLimit bound to opts, for Chain.
func RateLimitMiddleware(opts ...Option) Middleware {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newRateLimit(next, cfg) }
}

// FailoverMiddleware returns NewFailover bound to opts, for Chain. Give it
// the same WithBreakers group as the breaker middleware so that it skips
// open nodes.
func FailoverMiddleware(opts ...Option) Middleware {
	cfg := newConfig(opts)
	return func(next http.RoundTripper) http.RoundTripper { return newFailover(next, cfg) }
}

// verifyLogicalNames returns next in a ServiceTransport for cfg's service
// hosts when next is an *http.Transport that names no TLS server itself,
// and next unchanged otherwise.
func verifyLogicalNames(next http.RoundTripper, cfg *config) http.RoundTripper {
	t, ok := next.(*http.Transport)
	if !ok || len(cfg.services) == 0 || (t.TLSClientConfig != nil && t.TLSClientConfig.ServerName != "") {
		return next
	}
	hosts := make([]string, 0, len(cfg.services))
	for h := range cfg.services {
		hosts = append(hosts, h)
	}
	return ServiceTransport(t, hosts...)
}

// ServiceTransport returns a RoundTripper for https logical hosts behind
// failover. A request whose Host (the logical host failover keeps there,
// without port) is one of hosts, ignoring case, goes through a clone of base whose TLS
// config verifies that name, whatever node address the URL holds; every
// other request goes through base itself. Each host gets its own clone, so
// connections verified for one name are never reused for another; within a
// clone they are pooled per node address; plain http requests go through
// base. A nil base means a clone of http.DefaultTransport. The clones are
// the ServiceTransport's own: close their idle connections through it (or
// through the http.Client or chain around it), not through base.
//
// New does this itself when its next transport is an *http.Transport. Use
// it as the last transport of a Chain with the failover middleware when a
// Service's Host is reached over https.
func ServiceTransport(base *http.Transport, hosts ...string) http.RoundTripper {
	if base == nil {
		base = deftransport.Clone()
	}
	st := &serviceTransport{base: base, byHost: make(map[string]*http.Transport, len(hosts))}
	for _, h := range hosts {
		h = hostKey(h)
		name := h
		if hn, _, err := net.SplitHostPort(h); err == nil {
			name = hn
		}
		t := base.Clone()
		if t.TLSNextProto == nil && t.Protocols == nil && base.TLSNextProto["h2"] != nil {
			// net/http set HTTP/2 up on base. Its clone keeps the TLS
			// config that offers h2 but not the HTTP/2 transport, and with
			// a TLS config of its own would not set one up: it would speak
			// HTTP/1 on connections that agreed on h2 (golang/go#39302).
			t.ForceAttemptHTTP2 = true
		}
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.ServerName = name
		st.byHost[h] = t
		st.byHost[name] = t
	}
	return st
}

type serviceTransport struct {
	base   *http.Transport
	byHost map[string]*http.Transport
}

func (s *serviceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" { // no certificate to verify
		return s.base.RoundTrip(r)
	}
	h := r.Host
	if c, _ := r.Context().Value(callKey{}).(*call); c != nil && c.svc != nil && c.node != "" && c.node == r.URL.Host {
		// Routed by failover: the name to verify is the service's, whatever
		// Host header the caller set for the node.
		h = c.svc.Host
	}
	if h == "" {
		h = r.URL.Host
	}
	t := byHost(s.byHost, h)
	if t == nil && strings.IndexByte(h, ':') >= 0 {
		if name, _, err := net.SplitHostPort(h); err == nil {
			t = byHost(s.byHost, name) // "orders:8443" for a host given as "orders"
		}
	}
	if t != nil {
		return t.RoundTrip(r)
	}
	return s.base.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of base and of every
// host's clone.
func (s *serviceTransport) CloseIdleConnections() {
	s.base.CloseIdleConnections()
	for _, t := range s.byHost {
		t.CloseIdleConnections()
	}
}
