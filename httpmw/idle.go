package httpmw

import "net/http"

// idleCloser is the optional interface http.Client.CloseIdleConnections
// looks for on its Transport.
type idleCloser interface{ CloseIdleConnections() }

func closeIdle(next http.RoundTripper) {
	if c, ok := next.(idleCloser); ok {
		c.CloseIdleConnections()
	}
}

// CloseIdleConnections closes the idle connections of the transport below,
// if it has any, so that http.Client.CloseIdleConnections reaches through
// the chain.
func (t *Tracing) CloseIdleConnections() { closeIdle(t.next) }

// CloseIdleConnections closes the idle connections of the transport below.
func (l *RateLimit) CloseIdleConnections() { closeIdle(l.next) }

// CloseIdleConnections closes the idle connections of the transport below.
func (rt *Retry) CloseIdleConnections() { closeIdle(rt.next) }

// CloseIdleConnections closes the idle connections of the transport below.
func (f *Failover) CloseIdleConnections() { closeIdle(f.next) }

// CloseIdleConnections closes the idle connections of the transport below.
func (b *Breaker) CloseIdleConnections() { closeIdle(b.next) }

// CloseIdleConnections closes the idle connections of the transport below.
func (b *Bulkhead) CloseIdleConnections() { closeIdle(b.next) }
