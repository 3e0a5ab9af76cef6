package clustertest

import (
	"testing"
	"time"

	"github.com/rampart-go/rampart/topology"
)

// TestRejoinOrderIsDeterministic: when every node of a partition comes
// back at once, the new order, and so the primary, is the same every time
// (it followed map iteration order).
func TestRejoinOrderIsDeterministic(t *testing.T) {
	in := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Index: 0, Primary: "127.0.41.1", Replicas: []string{"127.0.41.2", "127.0.41.3"}, HashStart: 0, HashEnd: 0xffffffff}}}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	ips := []string{"127.0.41.1", "127.0.41.2", "127.0.41.3"}
	var first []string
	for range 100 {
		cfg := &config{interval: time.Second, timeout: 2 * time.Second}
		m := newMaster(cfg, in, ips, func(ip string) string { return ip })
		t0 := time.Now()
		m.evaluate(t0.Add(10 * time.Second)) // all three dead
		for _, ip := range ips {
			m.heartbeat(ip, t0.Add(11*time.Second))
		}
		ch, ok := m.evaluate(t0.Add(11 * time.Second))
		if !ok {
			t.Fatal("no change when the nodes came back")
		}
		p := ch.Map.Partitions[0]
		got := append([]string{p.Primary}, p.Replicas...)
		if first == nil {
			first = got
			continue
		}
		for i := range got {
			if got[i] != first[i] {
				t.Fatalf("order %v, then %v, from the same inputs", first, got)
			}
		}
	}
}
