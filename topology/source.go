package topology

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/rampart-go/rampart/internal/deftransport"
)

// Source yields the topology map, typically for a Watcher.
//
// Fetch returns the source's current map, already validated (by Parse or
// Validate). It may return a nil map and a nil error when the map has not
// changed since the last map it returned; a Watcher also ignores a map
// whose epoch equals the one it uses. An error that
// matches ErrInvalid means the source answered with a bad payload; any other
// error means it could not be read. Fetch must honor ctx and be safe to call
// from one goroutine at a time; implementations here are safe for
// concurrent use.
type Source interface {
	Fetch(ctx context.Context) (*Map, error)
}

// Static returns a Source that always yields m. It validates m once, now
// (sorting its partitions), and yields the validation error, if any, from
// every Fetch. Do not modify m afterwards.
func Static(m *Map) Source {
	return &staticSource{m: m, err: m.Validate()}
}

type staticSource struct {
	m   *Map
	err error
}

func (s *staticSource) Fetch(ctx context.Context) (*Map, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.m, nil
}

// File returns a Source that reads and parses the file at path on every
// Fetch, with the DefaultMaxBytes cap. A missing or unreadable file is a
// fetch error, not a rejection.
func File(path string) Source {
	return fileSource(path)
}

type fileSource string

func (path fileSource) Fetch(ctx context.Context) (*Map, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(string(path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readCapped(f, DefaultMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("topology: read %s: %w", path, err)
	}
	return parse(data, DefaultMaxBytes)
}

// readCapped reads r up to maxBytes; more than that is a tooLarge error.
func readCapped(r io.Reader, maxBytes int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxBytes {
		return nil, tooLarge(maxBytes)
	}
	return data, nil
}

// HTTPOption configures an HTTP Source. A nil HTTPOption is ignored.
type HTTPOption func(*httpSource)

// WithHTTPClient sets the client for the requests. The default is a client
// on a clone of http.DefaultTransport (with the WithTLSConfig config, if
// any). A nil client is ignored.
func WithHTTPClient(c *http.Client) HTTPOption {
	return func(s *httpSource) {
		if c != nil {
			s.client = c
		}
	}
}

// WithTLSConfig sets the TLS config of the default client's transport. It
// has no effect together with WithHTTPClient.
func WithTLSConfig(cfg *tls.Config) HTTPOption {
	return func(s *httpSource) { s.tls = cfg }
}

// WithHeader adds a header to every request, such as an Authorization
// header. Header values never appear in errors.
func WithHeader(key, value string) HTTPOption {
	return func(s *httpSource) {
		if s.header == nil {
			s.header = make(http.Header)
		}
		s.header.Add(key, value)
	}
}

// WithMaxBytes sets the payload size cap; a larger body is rejected with an
// error matching ErrTooLarge. Zero or negative means DefaultMaxBytes.
func WithMaxBytes(n int64) HTTPOption {
	return func(s *httpSource) { s.maxBytes = n }
}

// HTTP returns a Source that GETs url, the discovery master's
// /v1/cluster/topology endpoint, on every Fetch. It sends If-None-Match with
// the ETag of the last map it returned and takes a 304 as "unchanged": it
// yields that map again, which a Watcher already using it ignores, so that
// several Watchers may share the source. A 200 body is parsed with the size
// cap; any other status is a fetch error. Bodies are always drained
// (bounded) and closed.
//
// The default client's idle connections are closed when a Watcher's Run
// returns, so a stopped watcher leaves no connection or goroutine behind.
func HTTP(url string, opts ...HTTPOption) Source {
	s := &httpSource{url: url}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if s.client == nil {
		t := deftransport.Clone()
		if s.tls != nil {
			t.TLSClientConfig = s.tls
		}
		s.client = &http.Client{Transport: t}
		s.ownClient = true
	}
	return s
}

type httpSource struct {
	url      string
	client   *http.Client
	tls      *tls.Config
	header   http.Header
	maxBytes int64

	ownClient bool // client is the default one, made by HTTP

	mu   sync.Mutex
	etag string // ETag of the last map returned
	last *Map   // the last map returned, yielded again on a 304
}

// closeIdle closes the idle connections of the source's default client;
// Watcher.Run calls it when it returns.
func (s *httpSource) closeIdle() {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
}

// maxDrain bounds how much of a discarded body is read to reuse the
// connection.
const maxDrain = 64 << 10

func (s *httpSource) Fetch(ctx context.Context) (*Map, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("topology: bad source URL: %w", err)
	}
	for k, vs := range s.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "application/json")
	s.mu.Lock()
	etag := s.etag
	s.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("topology: fetch: %w", err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusNotModified:
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		return last, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("topology: GET %s: unexpected status %s", req.URL.Redacted(), resp.Status)
	}
	data, err := readCapped(resp.Body, s.maxBytes)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("topology: GET %s: reading body: %w", req.URL.Redacted(), err)
	}
	m, err := parse(data, s.maxBytes)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.etag, s.last = resp.Header.Get("ETag"), m
	s.mu.Unlock()
	return m, nil
}
