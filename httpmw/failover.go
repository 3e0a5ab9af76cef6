package httpmw

import (
	"context"
	"iter"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/internal/firstmap"
	"github.com/rampart-go/rampart/internal/throttle"
	"github.com/rampart-go/rampart/topology"
)

// Topology yields the topology map in use; it may return nil before the
// first map arrives. A *topology.Watcher satisfies it; FixedTopology wraps a
// map that never changes.
type Topology interface {
	Current() *topology.Map
}

// FixedTopology returns a Topology that always yields m. m must be valid
// (from topology.Parse, or checked with m.Validate) and must not be changed
// afterwards.
func FixedTopology(m *topology.Map) Topology { return fixedTopology{m} }

type fixedTopology struct{ m *topology.Map }

func (f fixedTopology) Current() *topology.Map { return f.m }

// DefaultPartitionHeader is the header that carries the partition key of a
// request whose context has none (see WithPartitionKey).
const DefaultPartitionHeader = "X-Partition-Key"

// Service configures failover for one logical host. Every field documents
// its zero value.
type Service struct {
	// Host is the logical host as written in request URLs, such as "orders"
	// or "orders:8443"; requests whose URL.Host equals it, ignoring case,
	// are routed.
	// Required.
	Host string
	// Topology yields the current map of the service's cluster. Required.
	Topology Topology
	// Port is the port dialled on nodes the map lists without one. Zero
	// means the port of Host if it has one, else 80 for http and 443 for
	// https.
	Port int
	// Hasher turns a partition key into the hash that picks the partition.
	// Nil means topology.FNV1a32, the cluster default.
	Hasher topology.Hasher
	// PartitionHeader names the request header that carries the partition
	// key when the context has none. Empty means DefaultPartitionHeader.
	PartitionHeader string
	// WriteFailover lets every write of this service go to a replica when
	// the primary cannot take it. False means writes go to the primary
	// only, unless a request's context says otherwise (WithWriteFailover).
	WriteFailover bool
	// TopologyWait bounds how long a request that arrives before Topology
	// has its first map waits for one (within the request's own context),
	// when Topology can be waited on (it has a method
	// Wait(context.Context) (*topology.Map, error), as *topology.Watcher
	// does). Zero means DefaultTopologyWait; negative means no wait: such
	// a request fails at once with ErrNoTopology.
	TopologyWait time.Duration
}

// DefaultTopologyWait is the longest a request waits for the first
// topology map of its service; see Service.TopologyWait.
const DefaultTopologyWait = 5 * time.Second

// service is a Service ready for use, with a cache of its routing table.
type service struct {
	Service
	hostPort int    // port of Host, 0 if none
	header   string // canonical partition header
	table    atomic.Pointer[routeTable]
	fo       *Failover // the Failover the service belongs to
}

func newService(s Service) *service {
	sv := &service{Service: s}
	if s.PartitionHeader == "" {
		sv.header = DefaultPartitionHeader
	} else {
		sv.header = textproto.CanonicalMIMEHeaderKey(s.PartitionHeader)
	}
	if _, p, err := net.SplitHostPort(s.Host); err == nil {
		sv.hostPort = atoiPort(p)
	}
	return sv
}

func atoiPort(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' || n > 65535 {
			return 0
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// routeTable is one map's nodes with their ports resolved, indexed by
// partition index, so routing allocates nothing.
type routeTable struct {
	m     *topology.Map
	port  int
	nodes [][]string // [partition index] primary first, then replicas
}

func (s *service) port(scheme string) int {
	switch {
	case s.Port > 0:
		return s.Port
	case s.hostPort > 0:
		return s.hostPort
	case scheme == "https":
		return 443
	}
	return 80
}

// routes returns the routing table of the current map, building it when the
// map (or the port) changed. It returns nil when there is no map.
func (s *service) routes(port int) *routeTable {
	m := s.Topology.Current()
	if m == nil {
		return nil
	}
	if t := s.table.Load(); t != nil && t.m == m && t.port == port {
		return t
	}
	t := &routeTable{m: m, port: port, nodes: make([][]string, len(m.Partitions))}
	for _, p := range m.Partitions {
		if p.Index < 0 || p.Index >= len(t.nodes) {
			continue // not a validated map; Partition lookups will miss it
		}
		ns := make([]string, 0, 1+len(p.Replicas))
		if p.Primary != "" {
			ns = append(ns, topology.SplitNode(p.Primary, port))
		}
		for _, r := range p.Replicas {
			ns = append(ns, topology.SplitNode(r, port))
		}
		t.nodes[p.Index] = ns
	}
	s.table.Store(t)
	return t
}

// waitFirstMap waits, within ctx and the service's TopologyWait, for the
// service's topology to have a map. It returns nil once there is one, else
// the error to fail the request with: ErrNoTopology, wrapping ctx's error
// when the request's own context ended the wait.
func (s *service) waitFirstMap(ctx context.Context) error {
	w, ok := s.Topology.(firstmap.Waiter)
	if !ok {
		return ErrNoTopology
	}
	_, err := firstmap.Wait(ctx, w, s.TopologyWait, DefaultTopologyWait, ErrNoTopology)
	return err
}

// partitionKey returns the request's partition key: the context's, else the
// configured header's.
func (s *service) partitionKey(c *call, r *http.Request) (string, bool) {
	if c.ov.hasKey {
		return c.ov.key, true
	}
	if vs := r.Header[s.header]; len(vs) > 0 && vs[0] != "" {
		return vs[0], true // an empty header is no key (an unset variable, more likely than a key)
	}
	return "", false
}

// Failover routes requests for the configured logical hosts (see
// WithService) to the nodes of the topology map: the partition key picks the
// partition; each attempt of a call goes to the next candidate node not yet
// tried in this call, primary first, then replicas in map order, skipping
// nodes whose breaker (see WithBreakers) is open and nodes that answered
// 429 or 503 with a Retry-After that is not over yet (unless every other
// candidate is open or throttled too); once every candidate was tried it
// starts over after the last one tried. Reads (GET, HEAD, OPTIONS,
// TRACE) use every candidate; writes go to the primary only unless the
// service or the request opts in (Service.WriteFailover, WithWriteFailover),
// and a write whose primary's breaker is open fails at once with a
// *NodeError matching ErrNoHealthyNode and breaker.ErrOpen.
//
// The request sent has URL.Host set to the node address and Host set to
// the logical host (unless the caller set Host), so the server sees the
// name the caller meant. Requests for other hosts pass through untouched.
//
// # TLS
//
// With URL.Host a node IP, an https request would make the transport verify
// the node's certificate against the IP. To keep verifying the logical
// name, the service's requests must go through a transport whose
// TLSClientConfig.ServerName is the logical host: ServiceTransport makes one
// from a base *http.Transport, and New does so itself when its next
// transport is an *http.Transport. Connections are still pooled per node,
// so routing stays exact.
//
// Create it with NewFailover (or FailoverMiddleware); the zero Failover is
// not usable. Failover is safe for concurrent use.
type Failover struct {
	next     http.RoundTripper
	services map[string]*service
	breakers *breaker.Group
	now      func() time.Time
	throttle throttle.Set // nodes that asked, with Retry-After, to be left alone
}

var _ http.RoundTripper = (*Failover)(nil)

// NewFailover returns the failover middleware around next (nil means
// http.DefaultTransport), configured by WithService and WithBreakers.
func NewFailover(next http.RoundTripper, opts ...Option) *Failover {
	return newFailover(next, newConfig(opts))
}

func newFailover(next http.RoundTripper, cfg *config) *Failover {
	f := &Failover{next: ensureHTTP(next), breakers: cfg.breakers, now: cfg.now}
	// Each Failover has services of its own, which know it: a call keeps
	// the service that routed its attempt, and reaches the Failover
	// through it.
	f.services = make(map[string]*service, len(cfg.services))
	for h, s := range cfg.services {
		f.services[h] = &service{Service: s.Service, hostPort: s.hostPort, header: s.header, fo: f}
	}
	return f
}

// RoundTrip routes r to a node of its partition if r's host is a
// configured logical host, and sends it through the next RoundTripper.
func (f *Failover) RoundTrip(r *http.Request) (*http.Response, error) {
	s := f.service(r)
	if s == nil {
		return f.next.RoundTrip(r)
	}
	c, r, created := joinCall(r)
	var (
		resp *http.Response
		err  error
	)
	if c.trace != nil && !c.attOpen {
		// No loop owner above started this attempt: make it one.
		resp, err = sendAttempt(c, f, r, 0, false)
	} else if err = f.route(s, c, r); err == nil {
		if c.attOpen {
			// Started above, before the node was known (Tracing or the
			// caller's middleware between this layer and the one that
			// started it): the attempt names the node it goes to.
			c.att.SetNode(c.node, c.partition)
		}
		resp, err = f.next.RoundTrip(r)
	}
	if created {
		c.finished = true
	}
	return resp, err
}

// service returns the configured service of r's host, or nil.
func (f *Failover) service(r *http.Request) *service {
	if r.URL == nil || len(f.services) == 0 {
		return nil
	}
	return byHost(f.services, r.URL.Host)
}

// byHost returns m's value for host h, matched without regard to case: m's
// keys are lower case. Only a host with an upper-case letter costs a
// conversion.
func byHost[V any](m map[string]V, h string) V {
	v, ok := m[h]
	if !ok {
		if k := hostKey(h); k != h {
			v = m[k]
		}
	}
	return v
}

// hostKey returns host h in lower case, as DNS compares names; it
// allocates only for a host with an upper-case letter.
func hostKey(h string) string {
	if strings.IndexFunc(h, unicode.IsUpper) >= 0 {
		return strings.ToLower(h)
	}
	return h
}

// route picks the node of this attempt and rewrites r, which the call owns,
// to go there. On error it closes r's body: r will not be sent.
func (f *Failover) route(s *service, c *call, r *http.Request) error {
	key, ok := s.partitionKey(c, r)
	if !ok {
		closeRequestBody(r)
		return ErrNoPartitionKey
	}
	t := s.routes(s.port(r.URL.Scheme))
	if t == nil {
		err := s.waitFirstMap(r.Context())
		if err == nil {
			t = s.routes(s.port(r.URL.Scheme))
		}
		if t == nil {
			closeRequestBody(r)
			if err == nil {
				err = ErrNoTopology
			}
			return err
		}
	}
	p := t.m.Partition(s.Hasher.Sum(key))
	if p == nil || p.Index < 0 || p.Index >= len(t.nodes) || len(t.nodes[p.Index]) == 0 {
		closeRequestBody(r)
		return &NodeError{Host: s.Host, Partition: -1}
	}
	c.partition = p.Index
	write := !isRead(r.Method)
	nodes := t.nodes[p.Index]
	c.primaryOnly = write && !s.WriteFailover && !c.ov.failoverWrite
	node, err := f.pick(c, nodes, c.primaryOnly)
	if err != nil {
		closeRequestBody(r)
		return &NodeError{Host: s.Host, Partition: p.Index, Write: c.primaryOnly, Err: err}
	}
	if node != nodes[0] {
		c.trace.Metrics().Failover(c.tctx, p.Index, nodes[0], node) // nil-safe
	}
	c.markTried(node)
	c.node, c.nodes, c.svc = node, nodes, s
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	r.URL.Host = node
	return nil
}

// open reports whether node's breaker is open. It remembers the last
// breaker looked up in the call, so that the breaker layer below need not
// look it up again.
func (f *Failover) open(c *call, node string) bool {
	if f.breakers == nil {
		return false
	}
	b := f.breakers.Get(node)
	c.br = b
	return b.State() == breaker.StateOpen
}

// errOpenCandidates is the cause when every candidate's breaker is open.
var errOpenCandidates error = breaker.ErrOpen

// pick chooses the node of this attempt among nodes (primary first).
func (f *Failover) pick(c *call, nodes []string, primaryOnly bool) (string, error) {
	if primaryOnly {
		// A throttled primary still takes the write: there is no other
		// node for it (the retry layer waits out a Retry-After it gets).
		if f.open(c, nodes[0]) {
			return "", errOpenCandidates
		}
		return nodes[0], nil
	}
	th := f.throttle.NewView(f.now)
	// The first candidate not tried in this call, not open, not throttled.
	for _, n := range nodes {
		if !c.wasTried(n) && !f.open(c, n) && !th.Throttled(n) {
			return n, nil
		}
	}
	// Every healthy candidate was tried: go round again, starting after
	// the node tried last.
	start := 0
	if last := c.lastTried(); last != "" {
		for i, n := range nodes {
			if n == last {
				start = i + 1
				break
			}
		}
	}
	var (
		soonest string
		soon    time.Time
	)
	for i := range nodes {
		n := nodes[(start+i)%len(nodes)]
		if f.open(c, n) {
			continue
		}
		u, throttled := th.Until(n)
		if !throttled {
			return n, nil
		}
		if soonest == "" || u.Before(soon) {
			soonest, soon = n, u
		}
	}
	if soonest != "" {
		// Every candidate not open is throttled: take the one free
		// soonest.
		return soonest, nil
	}
	return "", errOpenCandidates
}

// throttled records that the node of c's current attempt asked, with a
// Retry-After of d, to be sent nothing for d, and returns how long the next
// attempt must wait: 0 when another candidate of the call can take it at
// once (a read whose partition has a node neither open nor throttled), else
// until the first candidate's throttle ends (d for a write confined to the
// primary).
func (f *Failover) throttled(c *call, d time.Duration) time.Duration {
	var others iter.Seq[string] // none for a write confined to the primary
	if !c.primaryOnly {
		others = slices.Values(c.nodes)
	}
	return f.throttle.Pause(c.node, d, f.now(), others, func(n string) bool { return f.open(c, n) })
}
