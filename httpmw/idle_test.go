package httpmw_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/rampart-go/rampart/httpmw"
)

type idleCounting struct {
	http.RoundTripper
	closed atomic.Int32
}

func (c *idleCounting) CloseIdleConnections() { c.closed.Add(1) }

// TestCloseIdleConnectionsReachesTransport checks that
// http.Client.CloseIdleConnections on a rampart client reaches the caller's
// transport through every middleware, in the preset and in a Chain.
func TestCloseIdleConnectionsReachesTransport(t *testing.T) {
	base := &idleCounting{RoundTripper: http.DefaultTransport}
	(&http.Client{Transport: httpmw.New(base)}).CloseIdleConnections()
	if got := base.closed.Load(); got != 1 {
		t.Fatalf("preset: base transport saw %d CloseIdleConnections, want 1", got)
	}
	chain := httpmw.Chain(base,
		httpmw.TracingMiddleware(), httpmw.RateLimitMiddleware(), httpmw.RetryMiddleware(),
		httpmw.FailoverMiddleware(), httpmw.BreakerMiddleware(), httpmw.BulkheadMiddleware())
	(&http.Client{Transport: chain}).CloseIdleConnections()
	if got := base.closed.Load(); got != 2 {
		t.Fatalf("chain: base transport saw %d CloseIdleConnections in all, want 2", got)
	}
}
