package clustertest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rampart-go/rampart/topology"
)

// Sentinel errors. Every error returned by this package matches one of them
// with errors.Is.
var (
	// ErrInvalidTopology means the map given to Start or New cannot be run:
	// no partitions, an empty primary, a node that is not a loopback
	// address, or a node listed twice in one partition.
	ErrInvalidTopology = errors.New("clustertest: invalid topology")
	// ErrNoPorts means a port could not be bound: no port free on every
	// node address, none for the master, or a node's own ports taken by
	// the time Recover binds them again.
	ErrNoPorts = errors.New("clustertest: cannot bind ports")
	// ErrClosed is returned by Recover after the cluster was closed.
	ErrClosed = errors.New("clustertest: cluster closed")
	// ErrStuck is returned by Close when requests were still in flight when
	// its wait ran out; the error is a *StuckError naming the nodes.
	ErrStuck = errors.New("clustertest: requests stuck at close")
)

// StuckError reports the nodes that still had requests in flight when Close
// gave up waiting. It matches ErrStuck with errors.Is.
type StuckError struct {
	// InFlight maps each stuck node's IP to its number of requests in
	// flight when the wait ran out.
	InFlight map[string]int64
}

// Error names the stuck nodes in IP order.
func (e *StuckError) Error() string {
	ips := make([]string, 0, len(e.InFlight))
	for ip := range e.InFlight {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = fmt.Sprintf("%s (%d in flight)", ip, e.InFlight[ip])
	}
	return ErrStuck.Error() + ": " + strings.Join(parts, ", ")
}

// Is reports whether target is ErrStuck.
func (e *StuckError) Is(target error) bool { return target == ErrStuck }

// Service names one of the two services every node serves.
type Service int

const (
	// ServiceHTTP is the node's HTTP server.
	ServiceHTTP Service = iota + 1
	// ServiceGRPC is the node's gRPC server.
	ServiceGRPC
)

// Change describes one change of the served topology map.
type Change struct {
	// Epoch is the new map's epoch: always the previous epoch plus one.
	Epoch int64
	// Dead lists the nodes found dead in this change, in IP order.
	Dead []string
	// Rejoined lists the nodes that came back in this change, in IP order.
	Rejoined []string
	// Map is the new served map. Do not modify it.
	Map *topology.Map
}

// Default timings of the heartbeat protocol, as in production: nodes report
// every 5 s and the master marks a node dead after 15 s without a report.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatTimeout  = 15 * time.Second
	// DefaultCloseTimeout bounds how long Close waits for in-flight requests.
	DefaultCloseTimeout = 5 * time.Second
)

type config struct {
	httpPort, grpcPort int
	masterIP           string
	interval, timeout  time.Duration
	closeTimeout       time.Duration
	onChange           func(Change)
	mapPorts           Service
}

// Option configures a Cluster. A nil Option is ignored.
type Option func(*config)

// WithPorts fixes the HTTP and gRPC ports every node listens on. A zero port
// is picked at random among free ones (the default). Start fails with
// ErrNoPorts if a fixed port cannot be bound on every node address.
func WithPorts(httpPort, grpcPort int) Option {
	return func(c *config) { c.httpPort, c.grpcPort = httpPort, grpcPort }
}

// WithMasterIP sets the loopback address the discovery master listens on,
// with an ephemeral port for HTTP and another for gRPC. Default "127.0.0.1".
// Start fails with ErrInvalidTopology if ip is not a loopback IP.
func WithMasterIP(ip string) Option {
	return func(c *config) { c.masterIP = ip }
}

// WithHeartbeat sets how often nodes report to the master (and the master
// checks for dead nodes), and after how long without a report a node is dead.
// Zero values keep the defaults, DefaultHeartbeatInterval and three intervals
// (DefaultHeartbeatTimeout with the default interval). Tests use short
// values, such as 25ms and 200ms.
func WithHeartbeat(interval, timeout time.Duration) Option {
	return func(c *config) { c.interval, c.timeout = interval, timeout }
}

// WithCloseTimeout bounds how long Close waits for in-flight requests before
// it closes connections by force and reports the stuck nodes. Zero means
// DefaultCloseTimeout.
func WithCloseTimeout(d time.Duration) Option {
	return func(c *config) { c.closeTimeout = d }
}

// WithOnChange registers f to be called after every change of the served map.
// Calls are sequential, in epoch order, from the master's goroutine, and never
// under a lock: f may call any Cluster or Node method but Close (which waits
// for that goroutine), and a slow f delays the master's next liveness check.
func WithOnChange(f func(Change)) Option {
	return func(c *config) { c.onChange = f }
}

// WithPortsInMap makes the served map list every node as "ip:port" with the
// port of service s, instead of the bare IP of the default (where clients
// add their configured port, HTTPPort or GRPCPort).
func WithPortsInMap(s Service) Option {
	return func(c *config) { c.mapPorts = s }
}

func newConfig(opts []Option) config {
	c := config{masterIP: "127.0.0.1"}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.interval <= 0 {
		c.interval = DefaultHeartbeatInterval
	}
	if c.timeout <= 0 {
		c.timeout = 3 * c.interval
	}
	if c.closeTimeout <= 0 {
		c.closeTimeout = DefaultCloseTimeout
	}
	return c
}
