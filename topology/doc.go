// Package topology reads, validates and routes by the cluster topology map
// that the discovery master serves at GET /v1/cluster/topology.
//
// A Map splits the 32-bit space of key hashes into inclusive ranges, one per
// partition, each served by a primary node and zero or more replicas. Parse
// reads and validates the JSON payload and rejects anything wrong with an
// error that says what (errors.Is(err, ErrInvalid), errors.As with
// *ValidationError). Map.Lookup (or Map.Partition with your own Hasher) finds
// a key's partition by binary search, and Map.Candidates lists the nodes to
// try for one call, primary first, without allocating.
//
// A Watcher keeps the current map up to date from a Source (Static, File or
// an HTTP poll with ETags): it serves the map in use lock-free, ignores maps
// with a lower epoch, keeps the last good map when a payload is bad, and
// counts and reports each rejection.
//
// The package uses only the standard library and knows nothing of gRPC or
// OpenTelemetry; the transports and the metrics layer read its counters.
package topology
