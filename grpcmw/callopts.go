package grpcmw

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/topology"
)

// PartitionKeyOption is the CallOption made by [PartitionKey].
type PartitionKeyOption struct {
	grpc.EmptyCallOption
	// Key is the partition key; its hash picks the partition.
	Key string
}

// PartitionKey routes the call to the partition that owns key's hash. As a
// dial option (grpc.WithDefaultCallOptions) it sets a default key; a
// per-call PartitionKey overrides it. Without a key a call is routed as if
// its key were "".
//
// Like every rampart call option it is read by the rampart interceptors,
// which pass it down in the attempt's context; a ClientConn with the
// topology balancer but no rampart interceptor routes by the context only
// (see [ContextWithRoute]).
func PartitionKey(key string) grpc.CallOption { return PartitionKeyOption{Key: key} }

// Access says which nodes of a partition may serve a call.
type Access uint8

const (
	// AccessWrite, the default, sends the call to the partition's primary
	// only.
	AccessWrite Access = iota
	// AccessRead sends the call to the primary first and fails over to the
	// replicas, in order.
	AccessRead
	// AccessWriteAnyNode is a write that the caller allows to fail over to
	// replicas like a read (for replicated writes that any node accepts).
	AccessWriteAnyNode
)

// String returns "write", "read" or "write-any-node".
func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWriteAnyNode:
		return "write-any-node"
	default:
		return "write"
	}
}

// AccessOption is the CallOption made by [Read], [Write] and
// [WriteAnyNode].
type AccessOption struct {
	grpc.EmptyCallOption
	// Access is the call's access kind.
	Access Access
}

// Read marks the call as a read: it may be served by the partition's
// replicas when the primary cannot serve it.
func Read() grpc.CallOption { return AccessOption{Access: AccessRead} }

// Write marks the call as a write, served by the partition's primary only.
// Calls are writes unless marked otherwise, so Write is useful to override a
// dial-time Read.
func Write() grpc.CallOption { return AccessOption{Access: AccessWrite} }

// WriteAnyNode marks the call as a write that may fail over to replicas.
func WriteAnyNode() grpc.CallOption { return AccessOption{Access: AccessWriteAnyNode} }

// MaxAttemptsOption is the CallOption made by [MaxAttempts].
type MaxAttemptsOption struct {
	grpc.EmptyCallOption
	// N is the number of attempts, including the first.
	N int
}

// MaxAttempts sets how many attempts the retry interceptor makes for the
// call, including the first: MaxAttempts(1) disables retries. Values below 1
// are ignored.
func MaxAttempts(n int) grpc.CallOption { return MaxAttemptsOption{N: n} }

// Route is how a call is routed over the topology: its partition key and
// access kind. The interceptors build it from the call's options; use
// [ContextWithRoute] to route calls made on a ClientConn that has the
// topology balancer but no rampart interceptors.
type Route struct {
	// Key is the partition key.
	Key string
	// Access says which nodes may serve the call.
	Access Access
}

type routeKey struct{}

// ContextWithRoute returns a copy of ctx that carries r. Call options
// (PartitionKey, Read, Write) given to a call override the fields they set.
func ContextWithRoute(ctx context.Context, r Route) context.Context {
	return context.WithValue(ctx, routeKey{}, r)
}

// RouteFromContext returns the route ctx carries, if any.
func RouteFromContext(ctx context.Context) (Route, bool) {
	r, ok := ctx.Value(routeKey{}).(Route)
	return r, ok
}

// callConfig is what the rampart call options of one call say.
type callConfig struct {
	route       Route
	maxAttempts int // 0: the policy's own
	finish      int // how many grpc.OnFinish options the call has
}

// parseCallOptions reads the rampart options of a call, later options
// winning, on top of the route ctx carries.
func parseCallOptions(ctx context.Context, opts []grpc.CallOption) callConfig {
	var c callConfig
	if r, ok := ctx.Value(routeKey{}).(Route); ok {
		c.route = r
	}
	for _, o := range opts {
		switch o := o.(type) {
		case PartitionKeyOption:
			c.route.Key = o.Key
		case AccessOption:
			c.route.Access = o.Access
		case MaxAttemptsOption:
			if o.N >= 1 {
				c.maxAttempts = o.N
			}
		case grpc.OnFinishCallOption:
			c.finish++
		}
	}
	return c
}

// attemptInfo is the per-attempt state that travels down the chain in the
// attempt's context: the route, the nodes earlier attempts used (so the
// failover step and the picker pick another), and the node this attempt
// uses, set by the failover step or by the picker.
type attemptInfo struct {
	caller context.Context // the logical call's context, or nil
	route  Route
	tried  []string // nodes of earlier attempts; read-only for this attempt

	partition int                 // the partition index Failover chose, or -1
	part      *topology.Partition // that partition, when Failover chose it
	router    *Router             // the Router whose Failover chose it
	waited    time.Duration       // the backoff before this attempt

	mu     sync.Mutex
	node   string // the node of this attempt ("ip:port"), once chosen
	pinned bool   // node was chosen by Failover: the picker must use it
	// unrouted says the picker could not use the pinned node, which its
	// newer map no longer has or which is reconnecting: the node was not
	// contacted.
	unrouted bool
	// brk is node's breaker in the group brkGroup, when Failover looked it
	// up while choosing node, so that the breaker step need not look it up
	// again. Both are nil otherwise.
	brk      *breaker.Breaker
	brkGroup *breaker.Group
}

type attemptKey struct{}

// attemptCtx is an attempt's context: its parent with the attempt's state
// as the value of attemptKey{}, as context.WithValue would make it, but a
// plain struct, so that the retry step can keep its first attempt's context
// in the call's own allocation. It is never changed once handed down.
type attemptCtx struct {
	context.Context
	a *attemptInfo
}

// Value returns the attempt's state for attemptKey{}, and otherwise asks
// the parent.
func (c *attemptCtx) Value(key any) any {
	if _, ok := key.(attemptKey); ok {
		return c.a
	}
	return c.Context.Value(key)
}

// String names the context, as context.WithValue's contexts do.
func (c *attemptCtx) String() string { return "grpcmw.attemptContext" }

func withAttempt(ctx context.Context, a *attemptInfo) context.Context {
	return &attemptCtx{Context: ctx, a: a}
}

func attemptFrom(ctx context.Context) *attemptInfo {
	if c, ok := ctx.(*attemptCtx); ok {
		return c.a
	}
	a, _ := ctx.Value(attemptKey{}).(*attemptInfo)
	return a
}

// setNode records the attempt's node; pinned says the picker must use it.
func (a *attemptInfo) setNode(n string, pinned bool) {
	a.mu.Lock()
	a.node, a.pinned = n, pinned
	a.brk, a.brkGroup = nil, nil
	a.mu.Unlock()
}

// pin records the node Failover chose for the attempt and, when it looked
// it up, the node's breaker b in the group g.
func (a *attemptInfo) pin(n string, b *breaker.Breaker, g *breaker.Group) {
	a.mu.Lock()
	a.node, a.pinned = n, true
	a.brk, a.brkGroup = b, g
	a.mu.Unlock()
}

// pinnedNode returns the node Failover chose for the attempt, if any.
func (a *attemptInfo) pinnedNode() (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node, a.pinned
}

// pinnedBreaker is pinnedNode, plus the node's breaker in g when Failover
// looked it up in that group (nil otherwise).
func (a *attemptInfo) pinnedBreaker(g *breaker.Group) (string, bool, *breaker.Breaker) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.brkGroup != g {
		return a.node, a.pinned, nil
	}
	return a.node, a.pinned, a.brk
}

// setUnrouted notes that the picker could not use the pinned node.
func (a *attemptInfo) setUnrouted() {
	a.mu.Lock()
	a.unrouted = true
	a.mu.Unlock()
}

// wasUnrouted reports whether the picker could not use the pinned node;
// a may be nil.
func (a *attemptInfo) wasUnrouted() bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unrouted
}

func (a *attemptInfo) getNode() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.node
}

// callerOr returns the logical call's context, which the retry step records
// in the attempt's state (a may be nil), or ctx when there is none.
func (a *attemptInfo) callerOr(ctx context.Context) context.Context {
	if a != nil && a.caller != nil {
		return a.caller
	}
	return ctx
}

// excluded reports whether node was used by an earlier attempt.
func (a *attemptInfo) excluded(node string) bool {
	for _, t := range a.tried {
		if t == node {
			return true
		}
	}
	return false
}
