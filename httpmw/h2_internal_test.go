package httpmw

import (
	"crypto/tls"
	"net/http"
	"testing"
)

// A ServiceTransport's clone of a base on which net/http set HTTP/2 up
// speaks HTTP/2 too. Without that it would keep the TLS config that offers
// h2 but talk HTTP/1 on connections that agreed on it (golang/go#39302).
func TestServiceTransportKeepsHTTP2(t *testing.T) {
	base := &http.Transport{} // default TLS: net/http sets HTTP/2 up
	defer base.CloseIdleConnections()
	st := ServiceTransport(base, "orders").(*serviceTransport)
	if base.TLSNextProto["h2"] == nil {
		t.Skip("net/http did not set HTTP/2 up on a default Transport here (GODEBUG=http2client=0?)")
	}
	if c := st.byHost["orders"]; !c.ForceAttemptHTTP2 {
		t.Error("the clone for orders will not set HTTP/2 up, although base speaks it")
	}
	// A base with HTTP/2 turned off stays so.
	off := &http.Transport{TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	if c := ServiceTransport(off, "orders").(*serviceTransport).byHost["orders"]; c.ForceAttemptHTTP2 || len(c.TLSNextProto) != 0 {
		t.Error("the clone of a base without HTTP/2 turned it on")
	}
}
