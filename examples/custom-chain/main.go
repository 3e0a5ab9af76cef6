// Command custom-chain composes rampart's policies by hand, in an order the
// preset does not use, and adds a middleware of its own: for HTTP with
// httpmw.Chain, for gRPC with grpc.WithChainUnaryInterceptor.
//
// The preset puts the breaker inside the retry loop, one breaker per node,
// judging every attempt. Here the breaker goes outside the retry loop: it
// judges whole calls, so failed attempts that a retry repaired do not count
// against the node, and once calls keep failing it stops them before any
// attempt is made. A tiny custom middleware, innermost, counts the attempts
// that reach the wire.
//
// Against one node of a loopback cluster that first fails every second
// request and then every request, the program prints what each layer did.
//
// Run it with:
//
//	go run ./examples/custom-chain
//
// It exits with status 1 if the chains did not behave as described.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/clustertest/discoverypb"
	"github.com/rampart-go/rampart/grpcmw"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// countAttempts is a custom HTTP middleware: it counts every request that
// passes through it. Like every RoundTripper it must not modify the request.
func countAttempts(n *atomic.Int64) httpmw.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			n.Add(1)
			return next.RoundTrip(r)
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countUnary is the same custom middleware for gRPC: a unary interceptor.
func countUnary(n *atomic.Int64) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		n.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "custom-chain:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	// One node is enough: these chains have no failover step.
	m := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Index: 0, Primary: "127.0.16.1", HashStart: 0, HashEnd: 0xffffffff},
	}}
	// Nodes report to the master every 50ms; one silent for 1s is dead.
	cluster, err := clustertest.Start(m, clustertest.WithHeartbeat(50*time.Millisecond, time.Second))
	if err != nil {
		return err
	}
	// Last, once everything that used it is closed: Close reports requests
	// still in flight, which would mean a leak.
	defer func() { err = errors.Join(err, cluster.Close()) }()
	node := cluster.Node("127.0.16.1")

	// The policies: three attempts with a short backoff, and a breaker that
	// opens after three failed calls in a row and stays open for a minute.
	policy := &retry.Policy{MaxAttempts: 3, BaseDelay: 5 * time.Millisecond}
	newBreakers := func() *breaker.Group {
		return breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 3, Timeout: time.Minute}, 0)
	}

	// HTTP: breaker → retry → our counter → transport, outermost first.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	var httpAttempts atomic.Int64
	httpBreakers := newBreakers()
	client := &http.Client{Transport: httpmw.Chain(base,
		httpmw.BreakerMiddleware(httpmw.WithBreakers(httpBreakers)),
		httpmw.RetryMiddleware(httpmw.WithRetry(policy)),
		countAttempts(&httpAttempts),
	)}
	get := func() error { return httpGet(client, node.URL()+"/items/1") }

	// gRPC: the same order with interceptors, and gRPC's own retries off.
	var grpcAttempts atomic.Int64
	grpcBreakers := newBreakers()
	conn, err := grpc.NewClient(node.GRPCAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
		grpc.WithChainUnaryInterceptor(
			grpcmw.UnaryBreaker(grpcBreakers),
			grpcmw.UnaryRetry(policy),
			countUnary(&grpcAttempts),
		))
	if err != nil {
		return err
	}
	defer conn.Close()
	echo := discoverypb.NewEchoClient(conn)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := echo.Echo(ctx, &discoverypb.EchoRequest{Payload: []byte("hi")})
		return err
	}

	ok := true
	for _, c := range []struct {
		name     string
		call     func() error
		attempts *atomic.Int64
		breakers *breaker.Group
		key      string // the breaker's key: the node's address
	}{
		{"http", get, &httpAttempts, httpBreakers, node.HTTPAddr()},
		{"grpc", call, &grpcAttempts, grpcBreakers, node.GRPCAddr()},
	} {
		// 1. Every second request fails: retries repair every call, and
		// the breaker, which sees whole calls only, stays closed.
		node.SetErrorRate(0.5)
		c.attempts.Store(0)
		succeeded := 0
		for range 10 {
			if c.call() == nil {
				succeeded++
			}
		}
		state := c.breakers.Get(c.key).State()
		fmt.Printf("%s: every 2nd request fails: calls 10, succeeded %d, attempts %d, breaker %s\n",
			c.name, succeeded, c.attempts.Load(), state)
		ok = ok && succeeded == 10 && c.attempts.Load() == 19 && state == breaker.StateClosed

		// 2. Every request fails: three calls spend their three attempts,
		// then the breaker opens and stops calls before any attempt.
		node.SetErrorRate(1)
		c.attempts.Store(0)
		rejected := 0
		for range 5 {
			if err := c.call(); errors.Is(err, breaker.ErrOpen) {
				rejected++
			}
		}
		state = c.breakers.Get(c.key).State()
		fmt.Printf("%s: every request fails: calls 5, rejected by the breaker %d, attempts %d, breaker %s\n",
			c.name, rejected, c.attempts.Load(), state)
		ok = ok && rejected == 2 && c.attempts.Load() == 9 && state == breaker.StateOpen
		node.Heal()
	}
	fmt.Printf("chains behaved as described: %t\n", ok)
	if !ok {
		return errors.New("unexpected results")
	}
	return nil
}

// httpGet GETs url and fails unless the answer is 200.
func httpGet(client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
