package deftransport

import (
	"net/http"
	"testing"
)

// TestClone: a clone, never DefaultTransport itself, also when the program
// replaced it with another RoundTripper.
func TestClone(t *testing.T) {
	if got := Clone(); got == nil || got == http.DefaultTransport {
		t.Fatalf("Clone() = %p, want a clone of DefaultTransport", got)
	}
	orig := http.DefaultTransport
	t.Cleanup(func() { http.DefaultTransport = orig })
	http.DefaultTransport = roundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
	if got := Clone(); got == nil || got.Proxy == nil || !got.ForceAttemptHTTP2 {
		t.Fatalf("Clone() with DefaultTransport replaced = %+v, want net/http's defaults", got)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
