package grpcmw

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/internal/firstmap"
	"github.com/rampart-go/rampart/internal/throttle"
	"github.com/rampart-go/rampart/topology"
)

// Scheme is the URI scheme of the targets the topology resolver serves:
// "topology:///service".
const Scheme = "topology"

// Router routes calls over a cluster topology. It is the resolver.Builder
// for "topology:///service" targets: each resolver it builds follows the
// Router's watcher and hands gRPC every node of the map in use as an
// address, with the map itself and the Router as attributes for the
// topology balancer. The [Failover] interceptors use it to choose each
// attempt's node.
//
// Pass it to grpc.NewClient with grpc.WithResolvers, and select the
// topology balancer with grpc.WithDefaultServiceConfig([ServiceConfig]) (the
// preset does both); do not give it to resolver.Register: it belongs to one
// watcher, not to the process. The Router's resolvers never block and start
// no goroutine: they follow the watcher through Watcher.Subscribe.
// Create it with [NewRouter]; the zero Router is not usable. A Router is
// safe for concurrent use and may serve any number of ClientConns.
type Router struct {
	watcher  *topology.Watcher
	port     int
	hash     topology.Hasher
	breakers *breaker.Group
	topoWait time.Duration    // see WithTopologyWait
	now      func() time.Time // the clock of throttle
	waiting  func()           // test hook: a call starts waiting for the first map

	addrs    atomic.Pointer[addrCache] // dial addresses of the latest map seen
	throttle throttle.Set              // nodes that asked, with a pushback, to be left alone
}

// addrCache maps the nodes of one map to their dial addresses.
type addrCache struct {
	m     *topology.Map
	addrs map[string]string
}

// NewRouter returns a Router over the maps of w. Options that concern it:
// [WithPort] (the port of nodes listed without one), [WithHasher] and
// [WithBreakers] (skip nodes whose breaker is open; the preset shares its
// breakers). Other options are ignored.
func NewRouter(w *topology.Watcher, opts ...Option) *Router {
	c := newConfig(opts)
	return c.newRouter(w)
}

// Scheme returns "topology".
func (r *Router) Scheme() string { return Scheme }

// Build starts a resolver for target. It implements resolver.Builder.
func (r *Router) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	res := &topoResolver{router: r, cc: cc, service: target.Endpoint()}
	res.cancel = r.watcher.Subscribe(res.update)
	if m := r.watcher.Current(); m != nil {
		res.update(m)
	}
	return res, nil
}

// addr returns the address to dial for node.
func (r *Router) addr(node string) string {
	if c := r.addrs.Load(); c != nil {
		if a, ok := c.addrs[node]; ok {
			return a
		}
	}
	return topology.SplitNode(node, r.port)
}

// learn caches the dial addresses of m's nodes, unless they are cached.
func (r *Router) learn(m *topology.Map) {
	if m == nil {
		return
	}
	if c := r.addrs.Load(); c != nil && c.m == m {
		return
	}
	c := &addrCache{m: m, addrs: make(map[string]string)}
	for _, n := range m.Nodes() {
		c.addrs[n] = topology.SplitNode(n, r.port)
	}
	r.addrs.Store(c)
}

// firstMap waits, within ctx and the Router's topology wait, for the
// watcher's first map. If none comes, the error is ErrNoTopology, wrapping
// ctx's error when ctx ended the wait.
func (r *Router) firstMap(ctx context.Context) (*topology.Map, error) {
	if r.waiting != nil && r.topoWait >= 0 {
		r.waiting()
	}
	return firstmap.Wait(ctx, r.watcher, r.topoWait, DefaultTopologyWait, ErrNoTopology)
}

// throttled records that node, the node of attempt a, asked with a pushback
// of d to be sent nothing for d, and returns how long the next attempt must
// wait: 0 when another candidate of the call's partition (a read's replica
// or primary) is neither open nor throttled, else until the first
// candidate's throttle ends (d for a write, which only its primary takes).
func (r *Router) throttled(a *attemptInfo, node string, d time.Duration) time.Duration {
	var others iter.Seq[string] // none for a write, which only the primary takes
	if p := a.part; p != nil && a.route.Access != AccessWrite {
		others = func(yield func(string) bool) {
			if !yield(r.addr(p.Primary)) {
				return
			}
			for _, n := range p.Replicas {
				if !yield(r.addr(n)) {
					return
				}
			}
		}
	}
	return r.throttle.Pause(node, d, r.now(), others, func(addr string) bool { return r.breakerOpen(addr) != nil })
}

// breakerOpen returns the breaker's rejection if addr's breaker is open.
func (r *Router) breakerOpen(addr string) error {
	_, err := r.breaker(addr)
	return err
}

// breaker returns addr's breaker, or nil when r has no breakers, and the
// breaker's rejection if it is open.
func (r *Router) breaker(addr string) (*breaker.Breaker, error) {
	if r.breakers == nil {
		return nil, nil
	}
	b := r.breakers.Get(addr)
	if b.State() == breaker.StateOpen {
		return b, breaker.ErrOpen
	}
	return b, nil
}

// resolved is what a resolver hands the balancer with each map.
type resolved struct {
	router  *Router
	m       *topology.Map
	service string
}

// topoResolver pushes each map of the watcher to one ClientConn.
type topoResolver struct {
	router  *Router
	cc      resolver.ClientConn
	service string
	cancel  func()

	mu     sync.Mutex
	epoch  int64
	pushed bool
	closed bool
}

// update hands gRPC the nodes of m, unless a map of the same or a higher
// epoch was already handed over. It runs on the watcher's goroutine (and
// once in Build); the lock orders the two.
func (r *topoResolver) update(m *topology.Map) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || m == nil || (r.pushed && m.Epoch <= r.epoch) {
		return
	}
	r.pushed, r.epoch = true, m.Epoch
	r.router.learn(m)
	nodes := m.Nodes()
	addrs := make([]resolver.Address, 0, len(nodes))
	for _, n := range nodes {
		addrs = append(addrs, resolver.Address{
			Addr:       r.router.addr(n),
			Attributes: attributes.New(nodeAttrKey{}, n),
		})
	}
	_ = r.cc.UpdateState(resolver.State{
		Addresses:  addrs,
		Attributes: attributes.New(resolvedAttrKey{}, &resolved{router: r.router, m: m, service: r.service}),
	})
}

// ResolveNow does nothing: the watcher polls on its own schedule.
func (r *topoResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops following the watcher.
func (r *topoResolver) Close() {
	r.cancel()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}
