//go:build failsafebench

// The comparison with failsafe-go needs modules that go.sum does not list
// (failsafe-go's internal/util imports github.com/bits-and-blooms/bitset and
// github.com/influxdata/tdigest). Run it without touching the repository's
// go.mod/go.sum through a scratch copy:
//
//	cp go.mod go.sum /tmp/fsb/ && GOFLAGS=-mod=mod go test -modfile=/tmp/fsb/go.mod \
//	    -tags failsafebench -run '^$' -bench . ./httpmw/

package httpmw_test

import (
	"net/http"

	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"time"
)

// newFailsafePreset is failsafehttp with retry, circuit breaker, bulkhead and
// rate limiter.
func init() { failsafePreset = newFailsafePreset }

func newFailsafePreset(next http.RoundTripper, breakerTrips uint) http.RoundTripper {
	rp := failsafehttp.NewRetryPolicyBuilder().WithMaxAttempts(3).Build() // no delay
	cb := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(r *http.Response, err error) bool { return err != nil || r.StatusCode >= 500 }).
		WithFailureThreshold(breakerTrips).Build()
	bh := fsbulkhead.New[*http.Response](32)
	rl := ratelimiter.NewBursty[*http.Response](1<<30, time.Second)
	return failsafehttp.NewRoundTripperWithExecutor(next, failsafe.With[*http.Response](rp, cb, bh, rl))
}
