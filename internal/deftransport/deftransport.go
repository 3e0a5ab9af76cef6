// Package deftransport gives the packages that need a transport of their
// own a copy of the program's default one.
package deftransport

import (
	"net/http"
	"time"
)

// Clone returns a clone of http.DefaultTransport. A program may have
// replaced DefaultTransport with a RoundTripper of another type; Clone then
// returns a new transport with net/http's default proxy, HTTP/2 and
// timeouts instead of failing.
func Clone() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 90 * time.Second}
}
