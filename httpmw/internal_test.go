package httpmw

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"99999999999999999999", maxRetryAfterSeconds * time.Second, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"tomorrow", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseRetryAfter(tc.in, func() time.Time { return now })
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	h := http.Header{"Retry-After": {"3"}}
	if n := testing.AllocsPerRun(100, func() { retryAfter(h, func() time.Time { return now }) }); n != 0 {
		t.Fatalf("retryAfter allocates %v times", n)
	}
}

func TestClassifyStatus(t *testing.T) {
	for code, want := range map[int]struct {
		o outcome
		r bool
	}{
		200: {outcomeSuccess, false}, 301: {outcomeSuccess, false},
		400: {outcomeSuccess, false}, 404: {outcomeSuccess, false},
		429: {outcomeNeutral, true}, 500: {outcomeFailure, true},
		501: {outcomeSuccess, false}, 502: {outcomeFailure, true},
		503: {outcomeFailure, true}, 504: {outcomeFailure, true},
	} {
		if o, r := classifyStatus(code); o != want.o || r != want.r {
			t.Errorf("classifyStatus(%d) = %v, %v", code, o, r)
		}
	}
}

type countingReader struct {
	r      io.Reader
	n      int
	closed bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
func (c *countingReader) Close() error { c.closed = true; return nil }

// zeroReader returns 0, nil forever.
type zeroReader struct{ closed bool }

func (*zeroReader) Read([]byte) (int, error) { return 0, nil }
func (z *zeroReader) Close() error           { z.closed = true; return nil }

func TestDrainBounded(t *testing.T) {
	small := &countingReader{r: strings.NewReader("abc")}
	drain(small)
	if small.n != 3 || !small.closed {
		t.Fatalf("small body: read %d, closed %v", small.n, small.closed)
	}
	huge := &countingReader{r: strings.NewReader(strings.Repeat("x", 10*drainLimit))}
	drain(huge)
	if huge.n > drainLimit+4096 || !huge.closed {
		t.Fatalf("huge body: read %d, closed %v", huge.n, huge.closed)
	}
	z := &zeroReader{}
	drain(z) // must return
	if !z.closed {
		t.Fatal("zero reader not closed")
	}
}

// The success path's per-call state is one allocation: the call with the
// request and URL inline.
func TestNewCallAllocs(t *testing.T) {
	req, _ := http.NewRequest("GET", "http://orders/x?y=1", nil)
	n := testing.AllocsPerRun(100, func() {
		c := newCall(req.Context(), req)
		c.cur.URL.Host = "127.0.0.1:1"
	})
	if n != 1 {
		t.Fatalf("newCall: %v allocations, want 1", n)
	}
	if req.URL.Host != "orders" {
		t.Fatal("the caller's URL changed")
	}
}

// The per-call record is the one allocation of an untraced call. With the
// 8-byte header the allocator gives objects over 512 bytes that hold
// pointers, past 760 bytes it would take the 896-byte size class instead of
// 768 and cost every call 128 bytes more. Move or shrink fields rather than
// raise this bound.
func TestCallFitsSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sized for 64-bit platforms")
	}
	if n := unsafe.Sizeof(call{}); n > 760 {
		t.Fatalf("call is %d bytes: with its malloc header, over the 768-byte size class", n)
	}
}

// rwNoHalfClose is an upgraded body that cannot half-close.
type rwNoHalfClose struct{ io.ReadWriteCloser }

// An upgraded body wrapped for an attempt timeout reports a body that
// cannot half-close as net/http does: http.ErrNotSupported.
func TestCancelRWBodyCloseWriteNotSupported(t *testing.T) {
	cancelled := false
	body := withCancel(rwNoHalfClose{}, func() { cancelled = true })
	cw, ok := body.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", body)
	}
	if err := cw.CloseWrite(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("CloseWrite = %v, want http.ErrNotSupported", err)
	}
	if cancelled {
		t.Error("CloseWrite released the attempt's timeout: only Close does")
	}
}
