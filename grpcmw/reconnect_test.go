package grpcmw_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/topology"
)

type namedEcho struct {
	pb.UnimplementedEchoServer
	name string
}

func (s *namedEcho) Echo(context.Context, *pb.EchoRequest) (*pb.EchoReply, error) {
	return &pb.EchoReply{Node: s.name}, nil
}

// serveEcho serves impl on loopback and returns its address.
func serveEcho(t *testing.T, impl pb.EchoServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterEchoServer(srv, impl)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// blackholeProxy forwards TCP to target until blackhole is called; then it
// drops the connections it forwards and holds every new one open without
// a byte (a node whose host stopped answering), telling held of each.
type blackholeProxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	dark   bool
	conns  []net.Conn
	held   chan struct{}
	wg     sync.WaitGroup
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{lis: lis, target: target, held: make(chan struct{}, 16)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = lis.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *blackholeProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		dark := p.dark
		p.mu.Unlock()
		if dark {
			p.held <- struct{}{}
			continue // held open, silent
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

func (p *blackholeProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dark = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// A read whose primary lost its connection and cannot reconnect (its host
// accepts TCP but never answers) fails over to the ready replica at once,
// also when the failover step pinned the attempt to the primary: the
// picker waits only for a node that never connected, not for one that is
// reconnecting (it waited up to the 20 s connect timeout, here until the
// caller's deadline).
func TestReadSkipsReconnectingPrimary(t *testing.T) {
	replica := serveEcho(t, &namedEcho{name: "replica"})
	proxy := newBlackholeProxy(t, serveEcho(t, &namedEcho{name: "primary"}))
	m, err := topology.Parse([]byte(`{"clusterEpoch":1,"partitionCount":1,"partitions":[{"partitionIndex":0,
		"primaryNodeIp":"` + proxy.lis.Addr().String() + `","replicaNodeIps":["` + replica + `"],
		"hashRangeStart":"00000000","hashRangeEnd":"ffffffff"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	w := runWatcher(t, topology.NewWatcher(topology.Static(m)))
	conn, err := grpc.NewClient("topology:///echo", append(grpcmw.DialOptions(grpcmw.WithWatcher(w)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := pb.NewEchoClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := echo.Echo(ctx, &pb.EchoRequest{}, grpcmw.Read()); err != nil || r.Node != "primary" {
		t.Fatalf("warm-up: %v, %v; want primary", r, err)
	}
	proxy.blackhole()
	select {
	case <-proxy.held: // the ClientConn is reconnecting to the primary
	case <-time.After(5 * time.Second):
		t.Fatal("no reconnect to the primary")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer ccancel()
	r, err := echo.Echo(cctx, &pb.EchoRequest{}, grpcmw.Read())
	if err != nil || r.Node != "replica" {
		t.Fatalf("read after the primary went dark: %v, %v; want the replica", r, err)
	}
}
