package topology_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/topology"
)

// TestWatcherSeesPromotion runs a real local cluster, crashes the primary of
// a partition and checks that a Watcher polling the master over HTTP serves
// the map in which the master promoted a replica under a higher epoch.
func TestWatcherSeesPromotion(t *testing.T) {
	data, err := os.ReadFile("../clustertest/testdata/three-partitions.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := topology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	cluster := clustertest.New(t, m, clustertest.WithHeartbeat(25*time.Millisecond, 150*time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	updates := make(chan *topology.Map, 16)
	w := topology.NewWatcher(topology.HTTP(cluster.TopologyURL()), topology.WithInterval(20*time.Millisecond))
	unsubscribe := w.Subscribe(func(m *topology.Map) {
		select {
		case updates <- m:
		default:
		}
	})
	defer unsubscribe()
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	first, err := w.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := first.Partitions[0]
	oldPrimary, wantPrimary := p.Primary, p.Replicas[0]
	cluster.Node(oldPrimary).Crash()

	for {
		select {
		case <-ctx.Done():
			t.Fatalf("watcher never saw %s promoted; current map epoch %d", wantPrimary, w.Current().Epoch)
		case got := <-updates:
			if got.Epoch <= first.Epoch {
				continue // the first map itself, delivered to the subscriber too
			}
			part := got.Partition(p.HashStart)
			if part.Primary != wantPrimary {
				continue // an earlier change (the master may bump for other reasons)
			}
			for _, r := range part.Replicas {
				if r == oldPrimary {
					t.Errorf("crashed node %s still listed as a replica: %v", oldPrimary, part.Replicas)
				}
			}
			if cur := w.Current(); cur.Epoch < got.Epoch {
				t.Errorf("Current() epoch %d behind the update %d", cur.Epoch, got.Epoch)
			}
			return
		}
	}
}
