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

// dropProxy forwards TCP to target until drop is called; then it closes
// the connections it forwards and holds every new one open without a byte
// (a node whose host stopped answering, or is slow to come back), telling
// held of each, and forwards it after the hold, if the hold ends.
type dropProxy struct {
	lis     net.Listener
	target  string
	closed  chan struct{}
	mu      sync.Mutex
	dropped bool
	holdFor time.Duration // 0: for good
	conns   []net.Conn
	held    chan struct{}
	wg      sync.WaitGroup
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{lis: lis, target: target, closed: make(chan struct{}), held: make(chan struct{}, 1)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		close(p.closed)
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

func (p *dropProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		dropped, holdFor := p.dropped, p.holdFor
		p.mu.Unlock()
		if !dropped {
			p.forward(c)
			continue
		}
		select {
		case p.held <- struct{}{}:
		default:
		}
		if holdFor > 0 {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				select {
				case <-time.After(holdFor):
					p.forward(c)
				case <-p.closed:
				}
			}()
		}
	}
}

// forward connects c to the target.
func (p *dropProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	p.wg.Add(2)
	go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
	go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
}

// drop closes the connections and holds new ones for holdFor (0: for good).
func (p *dropProxy) drop(holdFor time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped, p.holdFor = true, holdFor
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// A read whose node lost its connection waits for the reconnect only when
// no other candidate is ready. With a ready replica it fails over at once,
// also when the failover step pinned the attempt to the primary. Before,
// the pinned pick waited up to the 20 s connect timeout (here, until the
// caller's deadline). With no replica, it waits for the node to come back,
// instead of spending every attempt on the reconnect.
func TestReadWhilePrimaryReconnects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replica  bool
		holdFor  time.Duration // how long the primary's reconnect takes; 0: for good
		wantNode string
	}{
		{"replica ready", true, 0, "replica"},
		{"no other node", false, time.Second, "primary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := newDropProxy(t, serveEcho(t, &namedEcho{name: "primary"}))
			replicas := "[]"
			if tc.replica {
				replicas = `["` + serveEcho(t, &namedEcho{name: "replica"}) + `"]`
			}
			m, err := topology.Parse([]byte(`{"clusterEpoch":1,"partitionCount":1,"partitions":[{"partitionIndex":0,
				"primaryNodeIp":"` + proxy.lis.Addr().String() + `","replicaNodeIps":` + replicas + `,
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
			proxy.drop(tc.holdFor)
			select {
			case <-proxy.held: // the ClientConn is reconnecting to the primary
			case <-ctx.Done():
				t.Fatal("no reconnect to the primary")
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer ccancel()
			r, err := echo.Echo(cctx, &pb.EchoRequest{}, grpcmw.Read())
			if err != nil || r.Node != tc.wantNode {
				t.Fatalf("read while the primary reconnects: %v, %v; want %s", r, err, tc.wantNode)
			}
		})
	}
}
