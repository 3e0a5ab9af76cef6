package topology

// Map is one validated version of the cluster topology: which partitions exist,
// which hash range each owns, and which node is its primary and which are its
// replicas.
//
// A Map is immutable once returned by Parse or Validate: share it freely
// between goroutines and never modify it.
type Map struct {
	// Epoch is the cluster epoch of this map. A map with a lower epoch than
	// the one in use is ignored by a Watcher.
	Epoch int64 `json:"clusterEpoch"`
	// MasterNodeID names the discovery master that issued the map.
	MasterNodeID string `json:"masterNodeId"`
	// PartitionCount is the number of partitions, equal to len(Partitions).
	PartitionCount int `json:"partitionCount"`
	// Partitions are ordered by HashStart after Parse, whatever the order of
	// the payload.
	Partitions []Partition `json:"partitions"`
}

// Partition is one hash range of the key space and the nodes that serve it.
type Partition struct {
	// Index is the partition's index, unique in the map, in [0, PartitionCount).
	Index int `json:"partitionIndex"`
	// Primary is the node that takes writes: an IP (v4 or v6) or ip:port.
	Primary string `json:"primaryNodeIp"`
	// Replicas serve reads when the primary cannot, in order of preference.
	Replicas []string `json:"replicaNodeIps"`
	// HashStart and HashEnd bound the partition's inclusive range of 32-bit
	// key hashes.
	HashStart uint32 `json:"-"`
	HashEnd   uint32 `json:"-"`
}
