package bulkhead_test

import (
	"context"
	"testing"

	"github.com/rampart-go/rampart/bulkhead"
)

func BenchmarkAcquireRelease(b *testing.B) {
	bh, _ := bulkhead.New(bulkhead.Config{MaxConcurrent: 8})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := bh.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release()
	}
}

func BenchmarkTryAcquireRelease(b *testing.B) {
	bh, _ := bulkhead.New(bulkhead.Config{MaxConcurrent: 8})
	b.ReportAllocs()
	for b.Loop() {
		p, ok := bh.TryAcquire()
		if !ok {
			b.Fatal("full")
		}
		p.Release()
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	bh, _ := bulkhead.New(bulkhead.Config{MaxConcurrent: 1 << 10})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := bh.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release()
		}
	})
}

func BenchmarkAcquireRejected(b *testing.B) {
	bh, _ := bulkhead.New(bulkhead.Config{MaxConcurrent: 1})
	held, _ := bh.TryAcquire()
	defer held.Release()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bh.Acquire(ctx); err != bulkhead.ErrFull {
			b.Fatal(err)
		}
	}
}

func BenchmarkGroupGet(b *testing.B) {
	g, _ := bulkhead.NewGroup(bulkhead.Config{}, 0)
	g.Get("127.0.1.5")
	b.ReportAllocs()
	for b.Loop() {
		g.Get("127.0.1.5")
	}
}
