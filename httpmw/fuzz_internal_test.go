package httpmw

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseRetryAfter checks that parseRetryAfter never panics, never
// returns a negative delay, reads delta-seconds exactly as strconv does (up
// to its cap), and agrees with http.ParseTime on dates. Seeds are in
// testdata/fuzz/FuzzParseRetryAfter and below.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "1", " 120 ", "\t7\t", "-1", "1.5", "+3", "", "   ",
		"99999999999999999999", "Mon, 23 Nov 2026 12:00:05 GMT", "Monday, 23-Nov-26 12:00:05 GMT",
		"Mon Nov 23 12:00:05 2026", "Sun, 22 Nov 2026 12:00:00 GMT", "soon"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, func() time.Time { return now })
		if !ok {
			if d != 0 {
				t.Fatalf("parseRetryAfter(%q) = %v, false: want 0 with false", v, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v: negative", v, d)
		}
		trimmed := strings.Trim(v, " \t")
		if n, err := strconv.ParseUint(trimmed, 10, 64); err == nil && trimmed != "" && trimmed[0] != '+' {
			want := time.Duration(min(n, maxRetryAfterSeconds)) * time.Second
			if d != want {
				t.Fatalf("parseRetryAfter(%q) = %v, want %v", v, d, want)
			}
			return
		}
		if at, err := http.ParseTime(trimmed); err == nil {
			if want := max(0, at.Sub(now)); d != want {
				t.Fatalf("parseRetryAfter(%q) = %v, want %v", v, d, want)
			}
		}
	})
}

// TestRetryAfterHugeSeconds: a delta past the cap is capped, not wrapped
// into a negative delay (which on 32-bit builds read as "do not retry").
func TestRetryAfterHugeSeconds(t *testing.T) {
	for _, v := range []string{"2147483648", "4294967296", "99999999999999999999"} {
		d, ok := parseRetryAfter(v, time.Now)
		if !ok || d != maxRetryAfterSeconds*time.Second {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want the cap, true", v, d, ok)
		}
	}
}
