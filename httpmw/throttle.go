package httpmw

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxThrottled bounds the nodes remembered as throttled at once; a node
// that asks to be left alone when the record is full (of nodes still
// throttled) is not remembered, and the retry layer waits for it instead.
const maxThrottled = 1024

// throttles remembers the nodes that answered 429 or 503 with a
// Retry-After, until the time they gave. Failover sends no attempt to such
// a node while another candidate can take it, and the retry layer waits
// out a Retry-After only when no other candidate can.
//
// The hot path pays one atomic load while no node is throttled.
type throttles struct {
	active atomic.Bool // some entry may still be in force
	mu     sync.Mutex
	until  map[string]time.Time
}

// set records that node asked for no request before until. It reports
// false if the record is full.
func (t *throttles) set(node string, until, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.until == nil {
		t.until = make(map[string]time.Time)
	}
	if _, ok := t.until[node]; !ok && len(t.until) >= maxThrottled {
		t.expireLocked(now)
		if len(t.until) >= maxThrottled {
			return false
		}
	}
	if u, ok := t.until[node]; !ok || until.After(u) {
		t.until[node] = until
	}
	t.active.Store(true)
	return true
}

// expireLocked forgets the entries no longer in force.
func (t *throttles) expireLocked(now time.Time) {
	for n, u := range t.until {
		if !now.Before(u) {
			delete(t.until, n)
		}
	}
	t.active.Store(len(t.until) > 0)
}

// snapshot is a view of the throttles at one instant, read lazily: a pick
// that meets no throttled node reads neither the clock nor the lock.
type snapshot struct {
	t   *throttles
	now func() time.Time
	at  time.Time
	set bool
}

// until returns the time node is throttled until, and whether that is
// still ahead.
func (s *snapshot) until(node string) (time.Time, bool) {
	if s.t == nil || !s.t.active.Load() {
		return time.Time{}, false
	}
	if !s.set {
		s.at, s.set = s.now(), true
	}
	s.t.mu.Lock()
	u, ok := s.t.until[node]
	if ok && !s.at.Before(u) {
		delete(s.t.until, node)
		s.t.active.Store(len(s.t.until) > 0)
		ok = false
	}
	s.t.mu.Unlock()
	return u, ok
}

// throttled reports whether node is throttled at the snapshot's instant.
func (s *snapshot) throttled(node string) bool {
	_, ok := s.until(node)
	return ok
}
