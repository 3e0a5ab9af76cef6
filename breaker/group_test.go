package breaker_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-go/rampart/breaker"
)

func TestGroupGet(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{Name: "ignored", Timeout: time.Hour}, 8)
	a := g.Get("127.0.1.5")
	if a != g.Get("127.0.1.5") {
		t.Fatal("Get returned two breakers for one key")
	}
	if a == g.Get("127.0.1.6") {
		t.Fatal("two keys share a breaker")
	}
	if a.Name() != "127.0.1.5" {
		t.Fatalf("Name() = %q, want the key", a.Name())
	}
	if g.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", g.Len())
	}
}

func TestGroupEviction(t *testing.T) {
	// Recency is the order of the Gets, not the clock: the Gets follow
	// each other with no pause.
	tests := []struct {
		name    string
		max     int
		open    []string // tripped before the last key arrives
		keys    []string // fetched in this order, gap apart
		evicted string
	}{
		{"least recently used goes", 2, nil, []string{"a", "b", "a", "c"}, "b"},
		{"a closed breaker goes before an open one", 2, []string{"a"}, []string{"a", "b", "c"}, "b"},
		{"all open: least recently used goes", 2, []string{"a", "b"}, []string{"b", "a", "c"}, "b"},
		{"bound of one", 1, nil, []string{"a", "b"}, "a"},
		{"a hot key stays most recent", 2, nil, []string{"a", "b", "a", "a", "a", "c"}, "b"},
		{"a hot key ages once others follow", 2, nil, []string{"a", "a", "a", "b", "c"}, "a"},
		{"order of three", 3, nil, []string{"a", "b", "c", "b", "a", "c", "a", "d"}, "b"},
		{"closed before open, then recency", 3, []string{"c"}, []string{"a", "b", "c", "b", "a", "d"}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1, Timeout: time.Hour}, tt.max)
			held := map[string]*breaker.Breaker{}
			last := tt.keys[len(tt.keys)-1]
			for _, k := range tt.keys {
				if k == last {
					for _, o := range tt.open {
						run(t, held[o], "f")
					}
				}
				held[k] = g.Get(k)
			}
			if g.Len() != tt.max {
				t.Fatalf("Len() = %d, want %d", g.Len(), tt.max)
			}
			// Kept keys first: a Get of the evicted key inserts a new
			// breaker, which evicts another.
			for k, b := range held {
				if k != tt.evicted && g.Get(k) != b {
					t.Errorf("%q was evicted, want %q evicted", k, tt.evicted)
				}
			}
			if g.Get(tt.evicted) == held[tt.evicted] {
				t.Errorf("%q was kept, want it evicted", tt.evicted)
			}
		})
	}
}

func TestGroupEvictedBreakerStaysCorrect(t *testing.T) {
	var mu sync.Mutex
	var events []string
	g := breaker.NewGroup(breaker.Settings{
		ConsecutiveFailures: 2,
		Timeout:             time.Hour,
		OnStateChange: func(c breaker.StateChange) {
			mu.Lock()
			events = append(events, fmt.Sprintf("%s:%v>%v", c.Name, c.From, c.To))
			mu.Unlock()
		},
	}, 1)
	old := g.Get("a")
	inflight, err := old.Allow()
	if err != nil {
		t.Fatal(err)
	}
	fresh := g.Get("b") // evicts "a" while a call through it is in flight
	if g.Get("a") == old {
		t.Fatal("a was not evicted")
	}
	_ = fresh
	inflight(breaker.Failure)
	run(t, old, "f")
	if old.State() != breaker.StateOpen {
		t.Fatalf("evicted breaker: state %v, want open", old.State())
	}
	if _, err := old.Allow(); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("evicted open breaker: Allow error %v, want ErrOpen", err)
	}
	if s := g.Get("a").State(); s != breaker.StateClosed {
		t.Fatalf("new breaker for a: state %v, want closed", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0] != "a:closed>open" {
		t.Fatalf("events %q, want the evicted breaker's trip", events)
	}
}

func TestGroupDefaultBound(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{}, 0)
	for i := range 1100 {
		g.Get(fmt.Sprint("k", i))
	}
	if g.Len() != 1024 {
		t.Fatalf("Len() = %d, want the default bound 1024", g.Len())
	}
}

func TestGroupConcurrent(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 3, Timeout: time.Hour}, 16)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				b := g.Get(fmt.Sprint("node", (w*7+i)%24))
				if done, err := b.Allow(); err == nil {
					if i%5 == 0 {
						done(breaker.Failure)
					} else {
						done(breaker.Success)
					}
				}
				_ = b.State()
			}
		}()
	}
	wg.Wait()
	if n := g.Len(); n > 16 {
		t.Fatalf("Len() = %d, above the bound 16", n)
	}
}

func TestGroupObserve(t *testing.T) {
	var fromSettings, observed, removed []string
	g := breaker.NewGroup(breaker.Settings{
		ConsecutiveFailures: 1,
		Timeout:             time.Hour,
		OnStateChange: func(ev breaker.StateChange) {
			fromSettings = append(fromSettings, ev.Name+":"+ev.To.String())
		},
	}, 0)
	early := g.Get("a") // created before Observe: observed all the same
	remove := g.Observe(func(ev breaker.StateChange) { observed = append(observed, ev.Name+":"+ev.To.String()) })
	removeOther := g.Observe(func(ev breaker.StateChange) { removed = append(removed, ev.Name) })
	removeOther()
	removeOther() // harmless

	for _, b := range []*breaker.Breaker{early, g.Get("b")} {
		done, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(breaker.Failure)
	}
	want := []string{"a:open", "b:open"}
	if !slices.Equal(fromSettings, want) || !slices.Equal(observed, want) {
		t.Fatalf("settings saw %v, observer saw %v; want %v for both", fromSettings, observed, want)
	}
	if len(removed) != 0 {
		t.Errorf("removed observer still called: %v", removed)
	}
	remove()
	done, err := g.Get("c").Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(breaker.Failure)
	if len(observed) != 2 {
		t.Errorf("observer called after remove: %v", observed)
	}
}

// ObserveOnce adds one observer per key; after its removal the key may be
// used again, and a nil key never blocks another.
func TestGroupObserveOnce(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{ConsecutiveFailures: 1}, 0)
	var a, b, c int
	removeA, added := g.ObserveOnce("metrics", func(breaker.StateChange) { a++ })
	if !added {
		t.Fatal("first observer with a key not added")
	}
	if _, added := g.ObserveOnce("metrics", func(breaker.StateChange) { b++ }); added {
		t.Error("a second observer with the same key was added")
	}
	g.ObserveOnce(nil, func(breaker.StateChange) { c++ })
	g.ObserveOnce(nil, func(breaker.StateChange) { c++ })
	trip := func(name string) {
		done, err := g.Get(name).Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(breaker.Failure)
	}
	trip("n1")
	if a != 1 || b != 0 || c != 2 {
		t.Fatalf("one transition seen a=%d b=%d nil-keyed=%d times, want 1, 0, 2", a, b, c)
	}
	removeA()
	if _, added := g.ObserveOnce("metrics", func(breaker.StateChange) { b++ }); !added {
		t.Fatal("the key stayed taken after its observer was removed")
	}
	trip("n2")
	if a != 1 || b != 1 {
		t.Errorf("after the swap a=%d b=%d, want 1, 1", a, b)
	}
}

// TestObserveOnceUncomparableKey: a key that is not comparable panics at
// once, also as the first key, and leaves the group usable.
func TestObserveOnceUncomparableKey(t *testing.T) {
	g := breaker.NewGroup(breaker.Settings{}, 0)
	for i := range 2 {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("ObserveOnce #%d with a slice key did not panic", i+1)
				}
			}()
			g.ObserveOnce([]int{i}, func(breaker.StateChange) {})
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Get("x")
		g.Observe(func(breaker.StateChange) {})()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the group is locked after the panic")
	}
}
