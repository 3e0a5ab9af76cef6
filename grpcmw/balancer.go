package grpcmw

import (
	"errors"
	"slices"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// BalancerName is the name under which the topology balancer is registered
// with gRPC. The preset selects it with the default service config
// {"loadBalancingConfig":[{"rampart_topology":{}}]}.
const BalancerName = "rampart_topology"

// ServiceConfig is the default service config the preset installs: the
// topology balancer, and no gRPC retry policy (rampart retries).
const ServiceConfig = `{"loadBalancingConfig":[{"` + BalancerName + `":{}}]}`

func init() { balancer.Register(topoBuilder{}) }

// Attribute keys on the resolver state and on each address.
type (
	resolvedAttrKey struct{} // *resolved on resolver.State.Attributes
	nodeAttrKey     struct{} // the node as the map lists it, on each Address
)

// NodeOf returns the node, as the topology map lists it, of an address
// made by the topology resolver, or "".
func NodeOf(addr resolver.Address) string {
	n, _ := addr.Attributes.Value(nodeAttrKey{}).(string)
	return n
}

type topoBuilder struct{}

func (topoBuilder) Name() string { return BalancerName }

func (topoBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &topoBalancer{
		cc:      cc,
		conns:   make(map[string]*subConn),
		evalr:   &balancer.ConnectivityStateEvaluator{},
		state:   connectivity.Connecting,
		scState: make(map[balancer.SubConn]*subConn),
	}
}

// subConn is one node's SubConn and its last known state.
type subConn struct {
	addr    string
	sc      balancer.SubConn
	state   connectivity.State
	settled bool // has been READY or TRANSIENT_FAILURE at least once
}

// topoBalancer keeps one SubConn per node of the topology and publishes a
// new picker on every change. gRPC serialises all calls into a balancer
// (including SubConn state listeners), so it needs no lock.
type topoBalancer struct {
	cc      balancer.ClientConn
	res     *resolved
	conns   map[string]*subConn // by address
	scState map[balancer.SubConn]*subConn
	evalr   *balancer.ConnectivityStateEvaluator
	state   connectivity.State
	closed  bool
}

func (b *topoBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	if b.closed {
		return nil
	}
	res, _ := s.ResolverState.Attributes.Value(resolvedAttrKey{}).(*resolved)
	if res == nil {
		err := errors.New("grpcmw: the " + BalancerName + " balancer needs the topology resolver (a topology:/// target with grpcmw.DialOptions or grpc.WithResolvers(router))")
		b.cc.UpdateState(balancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            base.NewErrPicker(status.Error(codes.Unavailable, err.Error())),
		})
		return balancer.ErrBadResolverState
	}
	b.res = res
	want := make(map[string]bool, len(s.ResolverState.Addresses))
	for _, a := range s.ResolverState.Addresses {
		want[a.Addr] = true
		if _, ok := b.conns[a.Addr]; ok {
			continue
		}
		e := &subConn{addr: a.Addr, state: connectivity.Idle}
		sc, err := b.cc.NewSubConn([]resolver.Address{a}, balancer.NewSubConnOptions{
			StateListener: func(st balancer.SubConnState) { b.updateSubConnState(e, st) },
		})
		if err != nil {
			continue
		}
		e.sc = sc
		b.conns[a.Addr] = e
		b.scState[sc] = e
		b.state = b.evalr.RecordTransition(connectivity.Shutdown, connectivity.Idle)
		sc.Connect()
	}
	for addr, e := range b.conns {
		if !want[addr] {
			// Its state entry goes when the Shutdown state arrives.
			delete(b.conns, addr)
			e.sc.Shutdown()
		}
	}
	b.publish()
	return nil
}

func (b *topoBalancer) updateSubConnState(e *subConn, st balancer.SubConnState) {
	if b.closed {
		return
	}
	if _, ok := b.scState[e.sc]; !ok {
		return
	}
	s := st.ConnectivityState
	old := e.state
	if old == connectivity.TransientFailure && (s == connectivity.Connecting || s == connectivity.Idle) {
		// Stay in TransientFailure until the node is READY again, so the
		// picker keeps failing over instead of queueing calls; reconnect.
		if s == connectivity.Idle {
			e.sc.Connect()
		}
		return
	}
	e.state = s
	if s == connectivity.Ready || s == connectivity.TransientFailure {
		e.settled = true
	}
	b.state = b.evalr.RecordTransition(old, s)
	switch s {
	case connectivity.Idle:
		e.sc.Connect()
	case connectivity.Shutdown:
		delete(b.scState, e.sc)
	}
	b.publish()
}

// publish hands gRPC a new picker over the current snapshot.
func (b *topoBalancer) publish() {
	if b.res == nil {
		return
	}
	p := &picker{resolved: b.res, conns: make(map[string]pickConn, len(b.conns))}
	for addr, e := range b.conns {
		p.conns[addr] = pickConn{sc: e.sc, state: e.state, settled: e.settled}
	}
	state := b.state
	if state == connectivity.Shutdown {
		state = connectivity.TransientFailure
	}
	b.cc.UpdateState(balancer.State{ConnectivityState: state, Picker: p})
}

func (b *topoBalancer) ResolverError(err error) {
	if b.closed || len(b.conns) > 0 {
		return // keep the last good map in use
	}
	b.cc.UpdateState(balancer.State{
		ConnectivityState: connectivity.TransientFailure,
		Picker:            base.NewErrPicker(status.Error(codes.Unavailable, "grpcmw: topology resolver: "+err.Error())),
	})
}

func (b *topoBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *topoBalancer) Close() { b.closed = true }

func (b *topoBalancer) ExitIdle() {
	for _, e := range b.conns {
		if e.state == connectivity.Idle {
			e.sc.Connect()
		}
	}
}

// pickConn is a SubConn and its state at the time the picker was built.
type pickConn struct {
	sc      balancer.SubConn
	state   connectivity.State
	settled bool
}

// picker is an immutable snapshot of the topology map and the nodes'
// connection states. It never blocks. Without a node chosen by the failover
// step it walks the call's candidates (the partition's primary, then for
// reads its replicas), preferring nodes no earlier attempt used and
// skipping nodes whose breaker is open:
//
//   - a READY node is picked;
//   - a node still making its first connection makes the call wait for the
//     next picker (ErrNoSubConnAvailable), so that a new ClientConn does not
//     send reads to replicas just because the primary is slower to connect;
//   - a node that lost its connection (reconnecting or in transient failure)
//     is skipped: the call fails over to the next candidate at once.
//
// When no candidate is left, calls wait while some node is reconnecting,
// and otherwise fail at once with Unavailable (a *NodeError), so the retry
// step can act.
type picker struct {
	*resolved
	conns map[string]pickConn
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	a := attemptFrom(info.Ctx)
	if a != nil {
		if node, pinned := a.pinnedNode(); pinned {
			return p.pickNode(a, node)
		}
	}
	var route Route
	if a != nil {
		route = a.route
	} else if r, ok := RouteFromContext(info.Ctx); ok {
		route = r
	}
	part := p.m.Partition(p.router.hash.Sum(route.Key))
	if part == nil {
		return balancer.PickResult{}, status.Error(codes.Unavailable, "grpcmw: the topology map has no partition for the key")
	}
	var (
		waiting bool
		cause   error
		usedRdy balancer.SubConn // a READY node an earlier attempt used
		usedAdr string
	)
	// try reports a pick, or that the call must wait.
	try := func(node string) (sc balancer.SubConn, addr string, wait bool) {
		addr = p.router.addr(node)
		if err := p.router.breakerOpen(addr); err != nil {
			cause = err
			return nil, "", false
		}
		c, ok := p.conns[addr]
		if !ok {
			return nil, "", false
		}
		if a != nil && a.excluded(addr) {
			if c.state == connectivity.Ready && usedRdy == nil {
				usedRdy, usedAdr = c.sc, addr
			}
			return nil, "", false
		}
		switch {
		case c.state == connectivity.Ready:
			return c.sc, addr, false
		case !c.settled:
			return nil, "", true
		case c.state != connectivity.TransientFailure:
			waiting = true
		}
		return nil, "", false
	}
	pick := func(sc balancer.SubConn, addr string) (balancer.PickResult, error) {
		if a != nil {
			a.setNode(addr, false)
		}
		return balancer.PickResult{SubConn: sc}, nil
	}
	nodes := [1]string{part.Primary}
	candidates := nodes[:]
	if route.Access != AccessWrite {
		candidates = append(candidates, part.Replicas...)
	}
	for _, n := range candidates {
		sc, addr, wait := try(n)
		if wait {
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
		if sc != nil {
			return pick(sc, addr)
		}
	}
	if usedRdy != nil {
		return pick(usedRdy, usedAdr) // every candidate was tried: retry one
	}
	if waiting {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	return balancer.PickResult{}, &NodeError{
		Service: p.service, Partition: part.Index, Write: route.Access == AccessWrite, Err: cause,
	}
}

// pickNode picks the SubConn of the node the failover step chose: READY is
// picked; a node connecting for the first time, the primary of a write
// (which has no other node), or a node reconnecting while no other
// candidate is READY waits for the next picker; anything else fails the
// attempt with Unavailable so that the retry step moves on.
func (p *picker) pickNode(a *attemptInfo, addr string) (balancer.PickResult, error) {
	c, ok := p.conns[addr]
	if !ok {
		if cur := p.router.watcher.Current(); cur != nil && p.m != nil && cur.Epoch > p.m.Epoch {
			// The failover step routed by a map this picker predates: the
			// watcher updates each ClientConn in turn, and this one's new
			// picker is on its way. Wait for it.
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
		// A map newer than the failover step's dropped the node: the
		// attempt fails, for the retry step to route again, but the node
		// was never contacted, and its breaker does not count it.
		a.setUnrouted()
		return balancer.PickResult{}, status.Error(codes.Unavailable, "grpcmw: node "+addr+" is not in the balancer's topology")
	}
	switch c.state {
	case connectivity.Ready:
		return balancer.PickResult{SubConn: c.sc}, nil
	case connectivity.Idle, connectivity.Connecting:
		if !c.settled || a.route.Access == AccessWrite || !p.otherReady(a, addr) {
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
		// It lost its connection and is reconnecting, which may take up
		// to the connect timeout, while another candidate is ready: the
		// read moves on to it at once, as unpinned picks do. The node was
		// not contacted; its breaker does not count the attempt.
		a.setUnrouted()
		return balancer.PickResult{}, status.Error(codes.Unavailable, "grpcmw: node "+addr+" is reconnecting")
	default:
		return balancer.PickResult{}, status.Error(codes.Unavailable, "grpcmw: node "+addr+": connection in transient failure")
	}
}

// otherReady reports whether a candidate of a's partition other than addr
// is READY with its breaker not open: a read has somewhere else to go.
func (p *picker) otherReady(a *attemptInfo, addr string) bool {
	if a.part == nil || a.route.Access == AccessWrite {
		return false
	}
	ready := func(node string) bool {
		o := p.router.addr(node)
		if o == addr || p.router.breakerOpen(o) != nil {
			return false
		}
		c, ok := p.conns[o]
		return ok && c.state == connectivity.Ready
	}
	return ready(a.part.Primary) || slices.ContainsFunc(a.part.Replicas, ready)
}
