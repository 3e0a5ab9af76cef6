package httpmw_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/ratelimit"
)

var errMaintenance = errors.New("maintenance: no calls")

// gatedLimiter is a caller's Limiter: a *ratelimit.Limiter (embedded for
// its token bucket) behind a gate of the caller's own, in its Wait.
type gatedLimiter struct {
	*ratelimit.Limiter
	closed atomic.Bool
	waits  atomic.Int32
}

func (g *gatedLimiter) Wait(ctx context.Context) error {
	g.waits.Add(1)
	if g.closed.Load() {
		return errMaintenance
	}
	return g.Limiter.Wait(ctx)
}

// The middleware waits on the Limiter given, through its Wait: a caller's
// type that embeds a *ratelimit.Limiter and has a Wait of its own is not
// bypassed through the embedded Take.
func TestRateLimitCallsLimiterWait(t *testing.T) {
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()

	lim, err := ratelimit.New(ratelimit.Config{Rate: rate.Inf, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedLimiter{Limiter: lim}
	g.closed.Store(true)
	rt := httpmw.NewRateLimit(tr, httpmw.WithRateLimit(g))
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	if g.waits.Load() == 0 || !errors.Is(err, errMaintenance) || served.Load() != 0 {
		t.Fatalf("limiter's Wait called %d times, err %v, server served %d: the caller's Wait was bypassed",
			g.waits.Load(), err, served.Load())
	}
}
