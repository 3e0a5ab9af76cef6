package httpmw

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// outcome is what one attempt means for the node's breaker.
type outcome uint8

const (
	outcomeSuccess outcome = iota // the node answered; a 2xx-4xx other than 429, or 501
	outcomeFailure                // connection error, attempt timeout, 5xx other than 501
	outcomeNeutral                // caller cancellation, local rejection, 429
)

// classifyStatus is the single place where a status code becomes a breaker
// outcome and a retry decision:
//
//   - 5xx except 501: failure, retryable (503 honours Retry-After);
//   - 429: neutral for the breaker (the node is alive but shedding), retryable,
//     honours Retry-After;
//   - 501 and every other code: success for the breaker, never retried.
func classifyStatus(code int) (o outcome, retryable bool) {
	switch {
	case code == http.StatusTooManyRequests:
		return outcomeNeutral, true
	case code == http.StatusNotImplemented:
		return outcomeSuccess, false
	case code >= 500 && code <= 599:
		return outcomeFailure, true
	}
	return outcomeSuccess, false
}

// retryAfterKey is the canonical header key, so that the map is indexed
// without canonicalisation.
const retryAfterKey = "Retry-After"

// retryAfter returns the delay the response asks for in its Retry-After
// header, delta-seconds or HTTP-date (relative to now, which is read only
// for a date), and whether there was a usable one. Only 429 and 503
// responses are asked. The delta-seconds form does not allocate.
func retryAfter(h http.Header, now func() time.Time) (time.Duration, bool) {
	vs := h[retryAfterKey]
	if len(vs) == 0 {
		return 0, false
	}
	return parseRetryAfter(vs[0], now)
}

// maxRetryAfterSeconds bounds the delta-seconds form so the multiplication
// cannot overflow; the retry policy caps the pushback much lower anyway.
const maxRetryAfterSeconds = 1 << 30

func parseRetryAfter(v string, now func() time.Time) (time.Duration, bool) {
	// Trim optional whitespace without allocating.
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		var n int64 // below 2^30 times 10, plus 9: fits, on 32-bit builds too
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			if n < maxRetryAfterSeconds {
				n = n*10 + int64(c-'0')
			}
		}
		if n > maxRetryAfterSeconds {
			n = maxRetryAfterSeconds
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now())
	if d < 0 {
		d = 0
	}
	return d, true
}

// drainLimit bounds how much of a discarded body is read so that its
// connection can be reused; a longer body is closed unread, which costs the
// connection but never blocks for long.
const drainLimit = 64 << 10

var drainBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// drain reads at most drainLimit bytes of body and closes it. A nil body is
// fine.
func drain(body io.ReadCloser) {
	if body == nil {
		return
	}
	if body != http.NoBody {
		bp := drainBufs.Get().(*[]byte)
		buf := *bp
		// Bounded in bytes and in reads (a reader may return 0, nil).
		for n, reads := 0, 0; n < drainLimit && reads < 2*drainLimit/len(buf); reads++ {
			m, err := body.Read(buf)
			n += m
			if err != nil {
				break
			}
		}
		drainBufs.Put(bp)
	}
	_ = body.Close()
}

// discard drains and closes a response the caller will never see.
func discard(resp *http.Response) {
	if resp != nil {
		drain(resp.Body)
	}
}

// closeRequestBody closes the body of a request that will not be sent, as
// the RoundTripper contract requires of every exit.
func closeRequestBody(req *http.Request) {
	if req.Body != nil && req.Body != http.NoBody {
		_ = req.Body.Close()
	}
}
