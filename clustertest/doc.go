// Package clustertest runs a real cluster on loopback for tests, examples and
// the drill, in the manner of net/http/httptest.
//
// A Cluster starts from a topology map: every node of the map becomes a Node,
// an HTTP server and a gRPC server on the node's own 127.x.y.z address, all
// nodes sharing one HTTP port and one gRPC port. A discovery master serves
// the live map at GET TopologyPath (with ETag and If-None-Match) and takes
// the nodes' heartbeats through the ClusterDiscoveryService gRPC service of
// package discoverypb. When a node stops reporting, the master marks it dead,
// promotes the first live replica of each partition it led and bumps the
// epoch.
//
// Faults are set per node at run time: Crash and Recover, Stall,
// SetLatency, SetErrorRate, SetThrottle, InterruptStreams, and Heal. Nodes
// count requests and verify request body checksums (HeaderBodySHA256) and
// traceparent headers, so tests can prove how much load a node saw and that
// no retry mangled a body.
//
// Tests call New, which closes the cluster through t.Cleanup; programs call
// Start and Close. Close releases stalled requests, waits for the rest, and
// reports requests that stay stuck instead of hanging.
//
// # Experimental
//
// The API of this package may still change.
package clustertest
