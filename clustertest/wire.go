package clustertest

import (
	"encoding/json"
	"fmt"

	"github.com/rampart-go/rampart/topology"
)

// wireMap and wirePartition are the JSON served at TopologyPath, as in
// DESIGN.md: hash ranges as 8 lower-case hex digits.
type wireMap struct {
	Epoch          int64           `json:"clusterEpoch"`
	MasterNodeID   string          `json:"masterNodeId"`
	PartitionCount int             `json:"partitionCount"`
	Partitions     []wirePartition `json:"partitions"`
}

type wirePartition struct {
	Index     int      `json:"partitionIndex"`
	Primary   string   `json:"primaryNodeIp"`
	Replicas  []string `json:"replicaNodeIps"`
	HashStart string   `json:"hashRangeStart"`
	HashEnd   string   `json:"hashRangeEnd"`
}

// marshalMap encodes m in the wire format of the topology endpoint.
func marshalMap(m *topology.Map) ([]byte, error) {
	w := wireMap{
		Epoch:          m.Epoch,
		MasterNodeID:   m.MasterNodeID,
		PartitionCount: m.PartitionCount,
		Partitions:     make([]wirePartition, len(m.Partitions)),
	}
	for i, p := range m.Partitions {
		replicas := p.Replicas
		if replicas == nil {
			replicas = []string{}
		}
		w.Partitions[i] = wirePartition{
			Index:     p.Index,
			Primary:   p.Primary,
			Replicas:  replicas,
			HashStart: fmt.Sprintf("%08x", p.HashStart),
			HashEnd:   fmt.Sprintf("%08x", p.HashEnd),
		}
	}
	return json.MarshalIndent(w, "", "  ")
}
