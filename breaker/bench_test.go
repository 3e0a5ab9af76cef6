package breaker_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/sony/gobreaker/v2"
)

// BenchmarkAllowSuccess is the admitted path: Allow, then done(Success).
func BenchmarkAllowSuccess(b *testing.B) {
	br := breaker.New(breaker.Settings{Timeout: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		done, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(breaker.Success)
	}
}

func BenchmarkAllowSuccessParallel(b *testing.B) {
	br := breaker.New(breaker.Settings{Timeout: time.Hour})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(breaker.Success)
		}
	})
}

// BenchmarkGobreakerTwoStep is the baseline: gobreaker's own two-step
// Allow and done(nil), without this package.
func BenchmarkGobreakerTwoStep(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{Timeout: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		done, err := cb.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(nil)
	}
}

func BenchmarkExecute(b *testing.B) {
	br := breaker.New(breaker.Settings{Timeout: time.Hour})
	fn := func() (breaker.Outcome, error) { return breaker.Success, nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Execute(fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRejectOpen is a rejection by an open breaker.
func BenchmarkRejectOpen(b *testing.B) {
	br := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour})
	done, _ := br.Allow()
	done(breaker.Failure)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Allow(); err == nil {
			b.Fatal("admitted")
		}
	}
}

func BenchmarkRejectOpenParallel(b *testing.B) {
	br := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour})
	done, _ := br.Allow()
	done(breaker.Failure)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Allow(); err == nil {
				b.Fatal("admitted")
			}
		}
	})
}

// BenchmarkRejectHalfOpen is a rejection by a half-open breaker whose probe
// slots are taken; it goes through gobreaker's lock.
func BenchmarkRejectHalfOpen(b *testing.B) {
	br := breaker.New(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Millisecond, TimeoutJitter: -1})
	done, _ := br.Allow()
	done(breaker.Failure)
	for br.State() != breaker.StateHalfOpen {
		time.Sleep(time.Millisecond)
	}
	probe, err := br.Allow()
	if err != nil {
		b.Fatal(err)
	}
	defer probe(breaker.Neutral)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Allow(); err == nil {
			b.Fatal("admitted")
		}
	}
}

func BenchmarkState(b *testing.B) {
	br := breaker.New(breaker.Settings{Timeout: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		if br.State() != breaker.StateClosed {
			b.Fatal("not closed")
		}
	}
}

// groupOf64 returns a group holding 64 node keys, and the keys.
func groupOf64() (*breaker.Group, []string) {
	g := breaker.NewGroup(breaker.Settings{}, 64)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprint("127.0.1.", i)
		g.Get(keys[i])
	}
	return g, keys
}

func BenchmarkGroupGet(b *testing.B) {
	g, keys := groupOf64()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Get(keys[i%len(keys)])
		i++
	}
}

// BenchmarkGroupGetHot is one key fetched over and over (a client of one
// node, or the breaker step looking up the node it just picked).
func BenchmarkGroupGetHot(b *testing.B) {
	g := breaker.NewGroup(breaker.Settings{}, 64)
	g.Get("127.0.1.1")
	b.ReportAllocs()
	for b.Loop() {
		g.Get("127.0.1.1")
	}
}

// BenchmarkGroupGetParallel is BenchmarkGroupGet from every P at once, each
// goroutine going round the keys from its own starting point.
func BenchmarkGroupGetParallel(b *testing.B) {
	g, keys := groupOf64()
	var start atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(start.Add(17))
		for pb.Next() {
			g.Get(keys[i%len(keys)])
			i++
		}
	})
}

func BenchmarkGroupGetHotParallel(b *testing.B) {
	g := breaker.NewGroup(breaker.Settings{}, 64)
	g.Get("127.0.1.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Get("127.0.1.1")
		}
	})
}
