// The peer of the preset's benchmarks: failsafe-go's failsafehttp with
// retry, circuit breaker, bulkhead and rate limiter.
//
//	go test -run '^$' -bench . -benchmem -count=6 ./httpmw/ | benchstat -

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
