// Package grpcmw is rampart for gRPC clients: unary and stream client
// interceptors for every policy, a topology resolver and balancer that
// route calls by partition key, and a preset that puts them together.
//
// # The preset
//
// [DialOptions] returns the dial options of the canonical chain, outermost
// first: tracing → rate limit → retry → failover → breaker → bulkhead. With
// a topology watcher it is the whole setup:
//
//	w := topology.NewWatcher(topology.HTTP(masterURL))
//	go w.Run(ctx)
//	conn, err := grpc.NewClient("topology:///orders", append(
//		grpcmw.DialOptions(grpcmw.WithWatcher(w), grpcmw.WithPort(7070)),
//		grpc.WithTransportCredentials(creds))...)
//
// Each step is also an interceptor of its own ([UnaryRetry],
// [UnaryFailover], [UnaryBreaker], ...) for grpc.WithChainUnaryInterceptor
// and grpc.WithChainStreamInterceptor, in any order.
//
// # Per-call options
//
// [PartitionKey], [Read], [Write], [WriteAnyNode] and [MaxAttempts] are
// grpc.CallOptions that embed grpc.EmptyCallOption: give them per call, or
// as defaults with grpc.WithDefaultCallOptions (per-call options win).
//
// # Routing
//
// A [Router] is the resolver.Builder of "topology:///service" targets: its
// resolvers hand gRPC every node of the watcher's map in use, and a new
// map (a higher epoch) updates the addresses. The balancer registered as
// [BalancerName] keeps a connection to every node; its pickers are
// immutable snapshots that never block. The failover step chooses each
// attempt's node (partition by key hash, primary first, replicas for reads,
// skipping open breakers and nodes earlier attempts used) and the picker
// sends the attempt there; without the failover step the picker chooses by
// the same rules from the route in the context ([ContextWithRoute]).
//
// # Classification
//
//   - Unavailable, and an attempt that ran out of its own timeout: retried
//     (on another node when there is one), failures for the breaker. A
//     grpc-retry-pushback-ms trailer on Unavailable is honoured as on
//     ResourceExhausted, and a negative one stops the retries (gRFC A6).
//   - ResourceExhausted: retried only with a grpc-retry-pushback-ms
//     trailer; a negative or malformed value means "do not retry". The
//     pushback is about the node that sent it: the failover step avoids
//     that node until it is over, and the call waits at least that long
//     only when no other candidate is free (a write, or every replica
//     throttled or open). Neutral for the breaker.
//   - Internal, Unknown, DataLoss, DeadlineExceeded of an attempt: failures
//     for the breaker, not retried (except attempt timeouts). A
//     DeadlineExceeded that beats the caller's own deadline by a moment
//     is the caller's: neutral.
//   - Every other code: not retried, a success for the breaker (the node
//     answered).
//   - The caller's context done: neutral, never retried.
//
// Streams are retried only before their first response message; client and
// bidirectional streams only when the stream cannot be opened (see
// [StreamRetry]).
//
// # Errors
//
// Every error the interceptors return carries a gRPC status
// (status.FromError and status.Code work) and unwraps to its cause, so
// errors.Is(err, breaker.ErrOpen), errors.Is(err, retry.ErrExhausted),
// errors.Is(err, ErrNoHealthyNode) and friends hold. See [Error] and
// [NodeError].
//
// # gRPC's own retries
//
// Do not stack rampart's retries on gRPC's (a retryPolicy in the service
// config, enabled by default in grpc-go): each rampart attempt would make
// up to gRPC's maxAttempts of its own. The preset turns gRPC's retries off
// with grpc.WithDisableRetry; do the same when you compose the retry
// interceptors by hand. gRPC's transparent retries (of calls that never
// left the client) stay on; they do not multiply attempts on a server.
//
// # Experimental
//
// This package is new; its API may still change before rampart v1.
package grpcmw
