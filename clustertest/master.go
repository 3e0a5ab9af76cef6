package clustertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/topology"
)

// TopologyPath is the path of the master's topology endpoint.
const TopologyPath = "/v1/cluster/topology"

// partState is the master's view of one partition: its members in order of
// preference, dead ones included. The served partition lists the live
// members in this order: the first is the primary.
type partState struct {
	index          int
	start, end     uint32
	order          []string
	servedPrimary  string
	servedReplicas []string
}

// master is the discovery master: it records heartbeats, decides liveness,
// and serves the map.
type master struct {
	cfg     *config
	addrFor func(ip string) string

	mu       sync.Mutex
	lastSeen map[string]time.Time
	alive    map[string]bool
	parts    []*partState
	cur      *topology.Map
	body     []byte
	etag     string
	changed  chan struct{} // closed and replaced by wake

	poke   chan struct{}
	cancel context.CancelFunc
	loopWG sync.WaitGroup

	httpLn, grpcLn net.Listener
	httpSrv        *http.Server
	grpcSrv        *grpc.Server
	serveWG        sync.WaitGroup
}

func newMaster(cfg *config, in *topology.Map, ips []string, addrFor func(string) string) *master {
	m := &master{
		cfg:      cfg,
		addrFor:  addrFor,
		lastSeen: make(map[string]time.Time, len(ips)),
		alive:    make(map[string]bool, len(ips)),
		changed:  make(chan struct{}),
		poke:     make(chan struct{}, 1),
	}
	now := time.Now()
	for _, ip := range ips {
		m.lastSeen[ip] = now
		m.alive[ip] = true
	}
	for _, p := range in.Partitions {
		ps := &partState{index: p.Index, start: p.HashStart, end: p.HashEnd}
		ps.order = append(ps.order, nodeIP(p.Primary))
		for _, r := range p.Replicas {
			ps.order = append(ps.order, nodeIP(r))
		}
		m.parts = append(m.parts, ps)
	}
	masterID := in.MasterNodeID
	if masterID == "" {
		masterID = "clustertest-master"
	}
	m.cur = &topology.Map{Epoch: in.Epoch, MasterNodeID: masterID, PartitionCount: len(m.parts)}
	m.rebuild()
	m.publish(m.buildMap(in.Epoch))
	return m
}

// rebuild recomputes the served members of every partition from the order
// and liveness, and reports whether anything changed. Called with mu held.
func (m *master) rebuild() bool {
	changed := false
	for _, p := range m.parts {
		var live []string
		for _, ip := range p.order {
			if m.alive[ip] {
				live = append(live, ip)
			}
		}
		primary, replicas := p.servedPrimary, []string{}
		if len(live) > 0 {
			primary, replicas = live[0], live[1:]
		} else if primary == "" {
			primary = p.order[0]
		}
		if primary != p.servedPrimary || !slices.Equal(replicas, p.servedReplicas) {
			changed = true
		}
		p.servedPrimary, p.servedReplicas = primary, slices.Clone(replicas)
	}
	return changed
}

// buildMap makes the served map of the given epoch. Called with mu held.
func (m *master) buildMap(epoch int64) *topology.Map {
	out := &topology.Map{
		Epoch:          epoch,
		MasterNodeID:   m.cur.MasterNodeID,
		PartitionCount: len(m.parts),
		Partitions:     make([]topology.Partition, len(m.parts)),
	}
	for i, p := range m.parts {
		replicas := make([]string, len(p.servedReplicas))
		for j, r := range p.servedReplicas {
			replicas[j] = m.addrFor(r)
		}
		out.Partitions[i] = topology.Partition{
			Index:     p.index,
			Primary:   m.addrFor(p.servedPrimary),
			Replicas:  replicas,
			HashStart: p.start,
			HashEnd:   p.end,
		}
	}
	return out
}

// publish makes mp the served map and wakes waiters. Called with mu held.
func (m *master) publish(mp *topology.Map) {
	body, err := marshalMap(mp)
	if err != nil { // cannot happen: the wire types always marshal
		panic(err)
	}
	sum := sha256.Sum256(body)
	m.cur, m.body = mp, body
	m.etag = `"` + strconv.FormatInt(mp.Epoch, 10) + "-" + hex.EncodeToString(sum[:8]) + `"`
	m.wake()
}

// wake wakes the waiters of WaitMap after a change of the map or of a
// node's liveness. Called with mu held.
func (m *master) wake() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// start serves HTTP and gRPC on the listeners and starts the liveness loop.
func (m *master) start() {
	m.httpSrv = &http.Server{Handler: http.HandlerFunc(m.serveHTTP), ErrorLog: discardLog}
	m.grpcSrv = grpc.NewServer()
	discoverypb.RegisterClusterDiscoveryServiceServer(m.grpcSrv, heartbeatServer{m: m})
	m.serveWG.Go(func() { _ = m.httpSrv.Serve(m.httpLn) })
	m.serveWG.Go(func() { _ = m.grpcSrv.Serve(m.grpcLn) })
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.loopWG.Go(func() { m.loop(ctx) })
}

// stop ends the loop and the servers started by start, waiting at most
// until ctx is done before closing connections by force.
func (m *master) stop(ctx context.Context) {
	m.cancel()
	m.loopWG.Wait()
	var wg sync.WaitGroup
	wg.Go(func() { shutdownHTTP(ctx, m.httpSrv) })
	wg.Go(func() { stopGRPC(ctx, m.grpcSrv) })
	wg.Wait()
	m.serveWG.Wait()
}

func (m *master) loop(ctx context.Context) {
	t := time.NewTicker(m.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.poke:
		}
		if ch, ok := m.evaluate(time.Now()); ok && m.cfg.onChange != nil {
			m.cfg.onChange(ch)
		}
	}
}

// evaluate applies liveness at now: nodes silent for longer than the timeout
// are dead; dead nodes heard from again rejoin at the end of their
// partitions' order, that is as replicas. If the served map changes, the
// epoch goes up by one.
func (m *master) evaluate(now time.Time) (Change, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var dead, rejoined []string
	for ip, seen := range m.lastSeen {
		alive := now.Sub(seen) <= m.cfg.timeout
		switch {
		case m.alive[ip] && !alive:
			dead = append(dead, ip)
		case !m.alive[ip] && alive:
			rejoined = append(rejoined, ip)
		}
		m.alive[ip] = alive
	}
	if len(dead) == 0 && len(rejoined) == 0 {
		return Change{}, false
	}
	m.wake()
	// In address order, so that nodes coming back together get the same
	// places (and the same primary) every time.
	slices.SortFunc(dead, compareIP)
	slices.SortFunc(rejoined, compareIP)
	for _, ip := range rejoined {
		for _, p := range m.parts {
			if i := slices.Index(p.order, ip); i >= 0 {
				p.order = append(slices.Delete(p.order, i, i+1), ip)
			}
		}
	}
	if !m.rebuild() {
		return Change{}, false
	}
	mp := m.buildMap(m.cur.Epoch + 1)
	m.publish(mp)
	return Change{Epoch: mp.Epoch, Dead: dead, Rejoined: rejoined, Map: mp}, true
}

// heartbeat records a report from ip and says whether it was unknown and
// whether it was dead before.
func (m *master) heartbeat(ip string, now time.Time) (known, wasDead bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.lastSeen[ip]; !ok {
		return false, false
	}
	m.lastSeen[ip] = now
	return true, !m.alive[ip]
}

func (m *master) current() (*topology.Map, []byte, string, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur, m.body, m.etag, m.changed
}

func (m *master) isAlive(ip string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alive[ip]
}

func (m *master) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != TopologyPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	_, body, etag, _ := m.current()
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// etagMatch implements the weak comparison of If-None-Match.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// heartbeatServer implements ClusterDiscoveryService on the master.
type heartbeatServer struct {
	discoverypb.UnimplementedClusterDiscoveryServiceServer
	m *master
}

// ReportHeartbeat records the node's liveness. It answers TERMINATE to a node
// that is not in the cluster, REBALANCE to a node the master had found dead
// (it rejoins as a replica), and CONTINUE otherwise.
func (s heartbeatServer) ReportHeartbeat(_ context.Context, req *discoverypb.HeartbeatRequest) (*discoverypb.HeartbeatResponse, error) {
	now := time.Now()
	id := req.GetNodeId()
	if id == "" {
		id = req.GetIpAddress()
	}
	resp := &discoverypb.HeartbeatResponse{SyncEpochTimestampMs: now.UnixMilli()}
	known, wasDead := s.m.heartbeat(nodeIP(id), now)
	switch {
	case !known:
		resp.RecommendedCommand = discoverypb.HeartbeatResponse_TERMINATE
	case wasDead:
		resp.RecommendedCommand = discoverypb.HeartbeatResponse_REBALANCE
		select {
		case s.m.poke <- struct{}{}:
		default:
		}
	}
	return resp, nil
}
