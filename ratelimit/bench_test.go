package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/ratelimit"
)

// plenty never runs out of tokens during a benchmark.
var plenty = ratelimit.Config{Rate: 1e12, Burst: 1 << 30, MaxWait: time.Second}

func BenchmarkWait(b *testing.B) {
	l, _ := ratelimit.New(plenty)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWaitParallel(b *testing.B) {
	l, _ := ratelimit.New(plenty)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	l, _ := ratelimit.New(plenty)
	b.ReportAllocs()
	for b.Loop() {
		if !l.Allow() {
			b.Fatal("limited")
		}
	}
}

// BenchmarkWaitRejected is the exhausted limiter with MaxWait 0.
func BenchmarkWaitRejected(b *testing.B) {
	l, _ := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1})
	l.Allow()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != ratelimit.ErrLimited {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitRejectedAfterReserve is the exhausted limiter whose next token
// is due after MaxWait: reserve, check, cancel.
func BenchmarkWaitRejectedAfterReserve(b *testing.B) {
	l, _ := ratelimit.New(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 1, MaxWait: time.Second})
	l.Allow()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Wait(ctx); err != ratelimit.ErrLimited {
			b.Fatal(err)
		}
	}
}

func BenchmarkGroupGet(b *testing.B) {
	g, _ := ratelimit.NewGroup(plenty, 0)
	g.Get("tenant-1")
	b.ReportAllocs()
	for b.Loop() {
		g.Get("tenant-1")
	}
}
