package clustertest

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/topology"
)

// Cluster is a real cluster on loopback: one Node per address of a topology
// map, each an HTTP server and a gRPC server on its own 127.x.y.z address,
// all nodes sharing one HTTP port and one gRPC port, plus a discovery master
// that serves the live map at TopologyURL and takes the nodes' heartbeats
// over gRPC at MasterGRPCAddr.
//
// The master marks a node dead when it has not heard from it for the
// heartbeat timeout (see WithHeartbeat). The served map lists the live
// members of each partition in order of preference: when a primary dies the
// first live replica becomes primary and the dead node drops out of the map;
// a dead replica drops out too; a dead node that heartbeats again rejoins
// its partitions as their last replica. A partition whose nodes are all
// dead keeps its last primary and no replicas. Each change of the served map
// bumps the epoch by one.
//
// The served map lists nodes by bare IP, clients adding their configured port
// (HTTPPort or GRPCPort), unless WithPortsInMap is given. Ports in the input
// map are ignored: every node listens on the cluster's ports.
//
// Tests most often want New; programs use Start and Close. All methods are
// safe for concurrent use.
type Cluster struct {
	cfg      config
	httpPort int
	grpcPort int
	nodes    []*Node
	byIP     map[string]*Node
	master   *master

	hbCancel context.CancelFunc
	hbWG     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New starts a cluster for the test tb and closes it in tb.Cleanup; Close
// errors, such as stuck requests, fail the test. It stops the test with
// tb.Fatal if the cluster cannot start.
func New(tb testing.TB, m *topology.Map, opts ...Option) *Cluster {
	tb.Helper()
	c, err := Start(m, opts...)
	if err != nil {
		tb.Fatalf("clustertest.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("clustertest: Close: %v", err)
		}
	})
	return c
}

// Start starts a cluster for the map m, which it does not modify, and returns
// once every node and the master are listening. The caller must Close it.
// Every node of m must be a loopback address (IPv4 127.0.0.0/8, or ::1);
// otherwise Start returns an error matching ErrInvalidTopology.
func Start(m *topology.Map, opts ...Option) (*Cluster, error) {
	cfg := newConfig(opts)
	ips, err := nodeIPs(m)
	if err != nil {
		return nil, err
	}
	masterIP, err := netip.ParseAddr(cfg.masterIP)
	if err != nil || !masterIP.IsLoopback() {
		return nil, fmt.Errorf("%w: master address %q is not a loopback IP", ErrInvalidTopology, cfg.masterIP)
	}
	c := &Cluster{cfg: cfg, byIP: make(map[string]*Node, len(ips))}

	httpPort, httpLns, err := bindAll(ips, cfg.httpPort, 0)
	if err != nil {
		return nil, err
	}
	grpcPort, grpcLns, err := bindAll(ips, cfg.grpcPort, httpPort)
	if err != nil {
		closeAll(httpLns...)
		return nil, err
	}
	c.httpPort, c.grpcPort = httpPort, grpcPort

	mh, err := net.Listen("tcp", net.JoinHostPort(masterIP.String(), "0"))
	if err != nil {
		closeAll(append(httpLns, grpcLns...)...)
		return nil, fmt.Errorf("%w: master: %w", ErrNoPorts, err)
	}
	mg, err := net.Listen("tcp", net.JoinHostPort(masterIP.String(), "0"))
	if err != nil {
		closeAll(append(httpLns, mh)...)
		closeAll(grpcLns...)
		return nil, fmt.Errorf("%w: master: %w", ErrNoPorts, err)
	}
	names := make([]string, len(ips))
	for i, ip := range ips {
		names[i] = ip.String()
	}
	c.master = newMaster(&c.cfg, m, names, c.servedAddr)
	c.master.httpLn, c.master.grpcLn = mh, mg
	masterAddr := mg.Addr().String()

	for i, ip := range ips {
		dialer := &net.Dialer{}
		if ip.Unmap().Is4() == masterIP.Unmap().Is4() {
			// Heartbeats come from the node's own address when it can reach
			// the master's; across families (a ::1 node, an IPv4 master) the
			// system picks, as the report names its node anyway.
			dialer.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
		}
		conn, err := grpc.NewClient("passthrough:///"+masterAddr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return dialer.DialContext(ctx, "tcp", addr)
			}))
		if err != nil { // only for a bad target or option: cannot happen
			for _, n := range c.nodes {
				_ = n.hbConn.Close()
			}
			closeAll(append(httpLns, grpcLns...)...)
			closeAll(mh, mg)
			return nil, fmt.Errorf("clustertest: heartbeat client: %w", err)
		}
		n := &Node{
			ip:          names[i],
			httpAddr:    net.JoinHostPort(names[i], strconv.Itoa(httpPort)),
			grpcAddr:    net.JoinHostPort(names[i], strconv.Itoa(grpcPort)),
			c:           c,
			hbPoke:      make(chan struct{}, 1),
			hbConn:      conn,
			streamBreak: -1,
		}
		c.nodes = append(c.nodes, n)
		c.byIP[n.ip] = n
	}
	for i, n := range c.nodes {
		n.setRunning(n.startLife(httpLns[i], grpcLns[i]))
	}
	c.master.start()
	ctx, cancel := context.WithCancel(context.Background())
	c.hbCancel = cancel
	for _, n := range c.nodes {
		c.hbWG.Go(func() { n.heartbeatLoop(ctx) })
	}
	return c, nil
}

// Close stops heartbeats, the master and every node. It releases stalled and
// delayed requests, then waits for requests in flight to complete, at most
// for the close timeout (see WithCloseTimeout); after that it closes
// connections by force and returns a *StuckError naming the nodes that still
// had requests in flight. Close is idempotent: later calls return the
// first's result.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	c.hbCancel()
	c.hbWG.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.closeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var stuck error
	wg.Go(func() { stuck = c.shutdownNodes(ctx) })
	wg.Go(func() { c.master.stop(ctx) })
	wg.Wait()
	for _, n := range c.nodes {
		_ = n.hbConn.Close()
	}
	return stuck
}

// shutdownNodes closes every node, waiting for in-flight requests until ctx
// is done, and reports the stuck ones.
func (c *Cluster) shutdownNodes(ctx context.Context) error {
	var lives []*life
	for _, n := range c.nodes {
		n.lifeMu.Lock()
		n.closed = true
		if l := n.running(); l != nil {
			lives = append(lives, l)
			n.setRunning(nil)
		}
		n.lifeMu.Unlock()
	}
	// Graceful phase: release faulted requests, stop accepting, let the
	// rest complete until ctx is done.
	forces := make([]func(), len(lives))
	for i, l := range lives {
		forces[i] = l.beginStop(ctx)
	}
	stuck := map[string]int64{}
	for _, n := range c.nodes {
		select {
		case <-n.inflight.idle():
		case <-ctx.Done():
			if k := n.inflight.count(); k > 0 {
				stuck[n.ip] = k
			}
		}
	}
	// Forced phase: close whatever is left.
	for _, force := range forces {
		force()
	}
	if len(stuck) == 0 {
		return nil
	}
	// Connections are closed by now; give the stuck handlers a short while to
	// notice, so that they do not outlive Close.
	grace, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.nodes {
		select {
		case <-n.inflight.idle():
		case <-grace.Done():
		}
	}
	return &StuckError{InFlight: stuck}
}

// HTTPPort returns the port of every node's HTTP server.
func (c *Cluster) HTTPPort() int { return c.httpPort }

// GRPCPort returns the port of every node's gRPC server.
func (c *Cluster) GRPCPort() int { return c.grpcPort }

// TopologyURL returns the URL of the master's topology endpoint, which
// answers GET with the served map as JSON and an ETag, and 304 Not Modified
// to a request whose If-None-Match matches.
func (c *Cluster) TopologyURL() string {
	return "http://" + c.master.httpLn.Addr().String() + TopologyPath
}

// MasterGRPCAddr returns the host:port of the master's
// ClusterDiscoveryService.
func (c *Cluster) MasterGRPCAddr() string { return c.master.grpcLn.Addr().String() }

// Map returns the map the master serves now. It is shared: do not modify it.
func (c *Cluster) Map() *topology.Map {
	m, _, _, _ := c.master.current()
	return m
}

// Epoch returns the epoch of the map the master serves now.
func (c *Cluster) Epoch() int64 { return c.Map().Epoch }

// Live reports whether the master holds the node with this IP alive.
func (c *Cluster) Live(ip string) bool { return c.master.isAlive(nodeIP(ip)) }

// WaitMap waits until ok holds for the served map, and returns that map, or
// ctx's error if ctx ends first. ok is called now and again after every
// change of the map or of a node's liveness (see Live), so it may also test
// liveness. ok must not modify the map.
func (c *Cluster) WaitMap(ctx context.Context, ok func(*topology.Map) bool) (*topology.Map, error) {
	for {
		m, _, _, changed := c.master.current()
		if ok(m) {
			return m, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// WaitEpoch waits until the served map's epoch is at least epoch and returns
// that map, or ctx's error.
func (c *Cluster) WaitEpoch(ctx context.Context, epoch int64) (*topology.Map, error) {
	return c.WaitMap(ctx, func(m *topology.Map) bool { return m.Epoch >= epoch })
}

// Node returns the node with this IP (a port, if any, is ignored), or nil.
func (c *Cluster) Node(ip string) *Node { return c.byIP[nodeIP(ip)] }

// Nodes returns every node, in IP order.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// servedAddr is how the served map names the node ip.
func (c *Cluster) servedAddr(ip string) string {
	switch c.cfg.mapPorts {
	case ServiceHTTP:
		return net.JoinHostPort(ip, strconv.Itoa(c.httpPort))
	case ServiceGRPC:
		return net.JoinHostPort(ip, strconv.Itoa(c.grpcPort))
	}
	return ip
}

// nodeIPs checks m and returns its distinct node addresses in order.
func nodeIPs(m *topology.Map) ([]netip.Addr, error) {
	if m == nil || len(m.Partitions) == 0 {
		return nil, fmt.Errorf("%w: no partitions", ErrInvalidTopology)
	}
	seen := map[netip.Addr]bool{}
	for _, p := range m.Partitions {
		if p.Primary == "" {
			return nil, fmt.Errorf("%w: partition %d has no primary", ErrInvalidTopology, p.Index)
		}
		inPart := map[netip.Addr]bool{}
		for _, a := range append([]string{p.Primary}, p.Replicas...) {
			ip, err := parseNode(a)
			if err != nil {
				return nil, fmt.Errorf("%w: partition %d: %v", ErrInvalidTopology, p.Index, err)
			}
			if inPart[ip] {
				return nil, fmt.Errorf("%w: partition %d lists %s twice", ErrInvalidTopology, p.Index, ip)
			}
			inPart[ip], seen[ip] = true, true
		}
	}
	ips := make([]netip.Addr, 0, len(seen))
	for ip := range seen {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips, nil
}

// parseNode parses a node address, an IP or ip:port, and checks that it is
// on loopback.
func parseNode(a string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(a)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(a)
		if err2 != nil {
			return netip.Addr{}, fmt.Errorf("node %q is not an IP or ip:port", a)
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("node %q is not a loopback address", a)
	}
	return ip, nil
}

// nodeIP returns the canonical IP of a node address, or a unchanged if it
// does not parse.
func nodeIP(a string) string {
	ip, err := parseNode(a)
	if err != nil {
		return a
	}
	return ip.String()
}

func compareIP(a, b string) int {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	if errX != nil || errY != nil {
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	}
	return x.Compare(y)
}

// portTries bounds the random ports tried before Start gives up.
const portTries = 50

// bindAll listens on port on every ip and returns the listeners in ip order.
// A zero port means a random free one, different from avoid: it tries
// random ports until one binds on every address.
func bindAll(ips []netip.Addr, port, avoid int) (int, []net.Listener, error) {
	try := func(p int) ([]net.Listener, error) {
		lns := make([]net.Listener, 0, len(ips))
		for _, ip := range ips {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(p)).String())
			if err != nil {
				closeAll(lns...)
				return nil, err
			}
			lns = append(lns, ln)
		}
		return lns, nil
	}
	if port != 0 {
		lns, err := try(port)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: port %d: %v", ErrNoPorts, port, err)
		}
		return port, lns, nil
	}
	var last error
	for range portTries {
		// Below Linux's ephemeral range, so outgoing connections do not
		// collide with us.
		p := 20000 + rand.IntN(12000)
		if p == avoid {
			continue
		}
		lns, err := try(p)
		if err == nil {
			return p, lns, nil
		}
		last = err
	}
	return 0, nil, fmt.Errorf("%w: %d random ports tried, last: %v", ErrNoPorts, portTries, last)
}

func closeAll(lns ...net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

var discardLog = log.New(discard{}, "", 0)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// shutdownHTTP shuts s down gracefully, by force once ctx is done.
func shutdownHTTP(ctx context.Context, s *http.Server) {
	if err := s.Shutdown(ctx); err != nil {
		_ = s.Close()
	}
}

// stopGRPC stops s gracefully, by force once ctx is done.
func stopGRPC(ctx context.Context, s *grpc.Server) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
		<-done
	}
}
