// Package throttle remembers the nodes that asked a client, with a
// Retry-After or a gRPC retry pushback, to send them nothing for a while.
// The transports' failover steps skip such a node while another candidate
// can take the attempt, and their retry loops wait out a pushback only when
// no other candidate can.
package throttle

import (
	"iter"
	"sync"
	"sync/atomic"
	"time"
)

// MaxNodes bounds the nodes a Set remembers at once; a node that asks to be
// left alone when the Set is full (of nodes still throttled) is not
// remembered, and the caller waits for it instead.
const MaxNodes = 1024

// Set remembers throttled nodes until the time each gave. The zero Set is
// empty and ready; a Set is safe for concurrent use. Reading it through a
// View costs one atomic load while no node is throttled; once every entry
// is over, the first View that looks forgets them all.
type Set struct {
	active atomic.Bool  // some entry may still be in force
	latest atomic.Int64 // the latest until of any entry, in Unix nanoseconds
	mu     sync.Mutex
	until  map[string]time.Time
}

// Add records that node asked for no request before until; now is the
// current time. An until not after now records nothing. It reports false
// if the Set is full.
func (t *Set) Add(node string, until, now time.Time) bool {
	if !until.After(now) {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.until == nil {
		t.until = make(map[string]time.Time)
	}
	if _, ok := t.until[node]; !ok && len(t.until) >= MaxNodes {
		t.expireLocked(now)
		if len(t.until) >= MaxNodes {
			return false
		}
	}
	if u, ok := t.until[node]; !ok || until.After(u) {
		t.until[node] = until
	}
	if n := until.UnixNano(); n > t.latest.Load() {
		t.latest.Store(n)
	}
	t.active.Store(true)
	return true
}

// expireLocked forgets the entries no longer in force.
func (t *Set) expireLocked(now time.Time) {
	var latest int64
	for n, u := range t.until {
		if !now.Before(u) {
			delete(t.until, n)
		} else {
			latest = max(latest, u.UnixNano())
		}
	}
	t.latest.Store(latest)
	t.active.Store(len(t.until) > 0)
}

// View reads a Set at one instant, taken from its clock at the first
// lookup that needs it: a pick that meets no throttled node reads neither
// the clock nor the lock. A View is used by one goroutine.
type View struct {
	set *Set
	now func() time.Time
	at  time.Time
	has bool
}

// NewView returns a View of s that reads the time from now when it first
// needs it.
func (s *Set) NewView(now func() time.Time) View { return View{set: s, now: now} }

// At returns a View of s at the instant at.
func (s *Set) At(at time.Time) View { return View{set: s, at: at, has: true} }

// Until returns the time node is throttled until, and whether that is
// still ahead of the View's instant. An entry found over is forgotten.
func (v *View) Until(node string) (time.Time, bool) {
	s := v.set
	if s == nil || !s.active.Load() {
		return time.Time{}, false
	}
	if !v.has {
		v.at, v.has = v.now(), true
	}
	if v.at.UnixNano() >= s.latest.Load() {
		// Every entry is over: forget them all, and let later Views pay
		// the atomic load alone again.
		s.mu.Lock()
		s.expireLocked(v.at)
		s.mu.Unlock()
		return time.Time{}, false
	}
	s.mu.Lock()
	u, ok := s.until[node]
	if ok && !v.at.Before(u) {
		delete(s.until, node)
		s.active.Store(len(s.until) > 0)
		ok = false
	}
	s.mu.Unlock()
	return u, ok
}

// Throttled reports whether node is throttled at the View's instant.
func (v *View) Throttled(node string) bool {
	_, ok := v.Until(node)
	return ok
}

// Pause records, at now, that node asked to be sent nothing for d, and
// returns how long the next attempt of its call must wait: 0 when one of
// others (the call's other candidates, skip ruling some out, such as nodes
// with an open breaker) is not throttled, else until the first of them is
// free, at most d. With no candidate left, or when the Set is full, it is d.
func (s *Set) Pause(node string, d time.Duration, now time.Time, others iter.Seq[string], skip func(string) bool) time.Duration {
	if !s.Add(node, now.Add(d), now) || others == nil {
		return d
	}
	v := s.At(now)
	wait := d
	for n := range others {
		if n == node || skip(n) {
			continue
		}
		u, ok := v.Until(n)
		if !ok {
			return 0
		}
		wait = min(wait, u.Sub(now))
	}
	return wait
}
