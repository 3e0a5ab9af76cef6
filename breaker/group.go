package breaker

import (
	"reflect"
	"sync"
	"sync/atomic"
)

// defaultMaxKeys is the bound of a Group created with maxKeys <= 0.
const defaultMaxKeys = 1024

// Group holds one [Breaker] per key (typically per node address), created on
// first use from shared [Settings], and at most maxKeys of them. Create it
// with [NewGroup]; the zero Group is not usable.
//
// [Group.Get] is what callers want. When a new key arrives at a full group,
// the group forgets one breaker: the least recently used closed one, or the
// least recently used of all if none is closed. Recency is the order of the
// Gets themselves, kept by a counter of the group rather than by the clock,
// so it holds however close together the Gets come. A forgotten breaker
// keeps working for whoever still holds it (its outcomes are recorded and
// its events delivered as usual); the next Get of its key starts a new,
// closed breaker.
//
// A Group is safe for concurrent use.
type Group struct {
	settings Settings
	max      int

	mu sync.RWMutex
	m  map[string]*groupEntry
	// lastUse is the latest use stamp handed out: the entry that holds it
	// is the most recently used one. Stamps only grow.
	lastUse atomic.Int64

	// observers are called after Settings.OnStateChange with every state
	// change of every breaker of the group; copy on write under mu.
	observers atomic.Pointer[[]*observer]
}

type observer struct {
	fn  func(StateChange)
	key any // ObserveOnce's key, or nil
}

type groupEntry struct {
	b    *Breaker
	used atomic.Int64 // use stamp of its last Get (see Group.lastUse)
}

// NewGroup returns an empty group whose breakers are configured by s, each
// named by its key (s.Name is ignored), holding at most maxKeys breakers.
// maxKeys <= 0 means 1024.
func NewGroup(s Settings, maxKeys int) *Group {
	if maxKeys <= 0 {
		maxKeys = defaultMaxKeys
	}
	return &Group{
		settings: s,
		max:      maxKeys,
		m:        make(map[string]*groupEntry),
	}
}

// Get returns the breaker for key, creating it if the group has none. Getting
// an existing breaker takes a read lock, reads no clock and allocates
// nothing; beyond the lock it writes to memory shared with other Gets only
// when another key was fetched since key's last Get. Creating a breaker may
// forget another (see [Group]); that scan is linear in the group's size.
func (g *Group) Get(key string) *Breaker {
	g.mu.RLock()
	e := g.m[key]
	g.mu.RUnlock()
	if e == nil {
		return g.create(key).b
	}
	// An entry holding the latest stamp is already the most recently
	// used one, so the same key fetched again (a hot node) changes
	// nothing. Otherwise it takes a new stamp; two Gets of one key racing
	// may store their stamps out of order, which only makes the entry
	// look one Get older than it is until its next Get.
	if e.used.Load() != g.lastUse.Load() {
		e.used.Store(g.lastUse.Add(1))
	}
	return e.b
}

func (g *Group) create(key string) *groupEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil {
		return e
	}
	if len(g.m) >= g.max {
		g.evictLocked()
	}
	s := g.settings
	s.Name = key
	s.OnStateChange = g.notify
	e := &groupEntry{b: New(s)}
	e.used.Store(g.lastUse.Add(1))
	g.m[key] = e
	return e
}

// evictLocked forgets the least recently used closed breaker, or the least
// recently used of all when none is closed. g.mu must be held.
func (g *Group) evictLocked() {
	var (
		victim     string
		victimUsed int64
		closed     bool
		found      bool
	)
	for k, e := range g.m {
		used := e.used.Load()
		isClosed := State(e.b.state.Load()) == StateClosed
		switch {
		case !found,
			isClosed && !closed,
			isClosed == closed && used < victimUsed:
			victim, victimUsed, closed, found = k, used, isClosed, true
		}
	}
	if found {
		delete(g.m, victim)
	}
}

// Observe adds fn to the functions called with every state change of every
// breaker in the group, present and future, after Settings.OnStateChange.
// Like OnStateChange, fn runs on the goroutine delivering the breaker's
// events (normally the one whose call caused the change), never under a
// lock, and may call the breaker. The returned function
// removes fn; it is safe to call more than once. Transports use Observe to
// record breaker metrics without taking over the user's OnStateChange.
func (g *Group) Observe(fn func(StateChange)) (remove func()) {
	remove, _ = g.observe(nil, fn)
	return remove
}

// ObserveOnce is Observe for an observer known by key, a comparable value
// such as the metrics it records into: while an observer added with an
// equal key is registered, it adds nothing and reports false. Several
// clients built on one group and one set of metrics then count each state
// change once. A nil key is never equal to another; a key that is not
// comparable panics, as it would as a map key.
func (g *Group) ObserveOnce(key any, fn func(StateChange)) (remove func(), added bool) {
	return g.observe(key, fn)
}

func (g *Group) observe(key any, fn func(StateChange)) (remove func(), added bool) {
	if fn == nil {
		return func() {}, false
	}
	if key != nil && !reflect.TypeOf(key).Comparable() {
		// Panic now, as a map key would, not while comparing under g.mu.
		panic("breaker: ObserveOnce key of uncomparable type " + reflect.TypeOf(key).String())
	}
	o := &observer{fn: fn, key: key}
	if !g.addObserver(o) {
		return func() {}, false
	}
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		cur := g.observers.Load()
		if cur == nil {
			return
		}
		next := make([]*observer, 0, len(*cur))
		for _, x := range *cur {
			if x != o {
				next = append(next, x)
			}
		}
		g.observers.Store(&next)
	}, true
}

// addObserver adds o unless an observer with an equal non-nil key is
// registered. A key holding an uncomparable value panics with g.mu free.
func (g *Group) addObserver(o *observer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	var list []*observer
	if cur := g.observers.Load(); cur != nil {
		if o.key != nil {
			for _, x := range *cur {
				if x.key == o.key {
					return false
				}
			}
		}
		list = append(list, *cur...)
	}
	list = append(list, o)
	g.observers.Store(&list)
	return true
}

// notify is the OnStateChange of the group's breakers.
func (g *Group) notify(ev StateChange) {
	if fn := g.settings.OnStateChange; fn != nil {
		fn(ev)
	}
	if list := g.observers.Load(); list != nil {
		for _, o := range *list {
			o.fn(ev)
		}
	}
}

// Len returns the number of breakers the group holds.
func (g *Group) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.m)
}
