package main

import (
	"slices"
	"sync"
	"time"
)

// recorder collects the outcome of every logical call of a scenario into
// one-second buckets, for the timeline, and into whole-run totals.
type recorder struct {
	mu      sync.Mutex
	start   time.Time
	buckets []bucket // one per second of the run, made up front

	reads, writes      int64
	readsOK, writesOK  int64
	failed             int64
	sawErrors          int64     // calls that failed or retried after an error
	all, readLat       []float64 // milliseconds
	maxWriteOverDeadMs float64
	faultCalls         int64
	faultAttempts      int64
	inFault            bool
	healed             time.Time // when the fault was healed, if it was
	recovered, recOK   int64     // calls started recoverySettle after the heal
}

// recoverySettle is how long after a heal the drill expects calls to
// succeed again: breakers half-open and probe, and gRPC reconnects (the
// preset's reconnect backoff is at most 2s, and nodes come back within
// about a second of a short outage).
const recoverySettle = time.Second

type bucket struct {
	calls, ok, attempts int64
	lat                 []float64
	epoch               int64
	breakers            []int
}

// newRecorder returns a recorder for a run of the given length from start:
// one bucket per second, the last one partial if the length is not whole
// seconds.
func newRecorder(start time.Time, length time.Duration) *recorder {
	n := max(1, int((length+time.Second-1)/time.Second))
	return &recorder{start: start, buckets: make([]bucket, n)}
}

// bucketAt returns the bucket of the second t falls in. Calls that end after
// the run (those in flight when it ended) count in its last second.
func (r *recorder) bucketAt(t time.Time) *bucket {
	i := int(t.Sub(r.start) / time.Second)
	return &r.buckets[max(0, min(i, len(r.buckets)-1))]
}

// call records one logical call that ended at end after lat, using attempts
// attempts. deadline is the call's own deadline, for the write-wait check.
func (r *recorder) call(end time.Time, read, ok bool, lat time.Duration, attempts int, deadline time.Duration) {
	ms := float64(lat) / float64(time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketAt(end)
	b.calls++
	b.attempts += int64(attempts)
	b.lat = append(b.lat, ms)
	if ok {
		b.ok++
	} else {
		r.failed++
	}
	if !ok || attempts > 1 { // a retry follows a failed attempt
		r.sawErrors++
	}
	r.all = append(r.all, ms)
	if read {
		r.reads++
		r.readLat = append(r.readLat, ms)
		if ok {
			r.readsOK++
		}
	} else {
		r.writes++
		if ok {
			r.writesOK++
		}
		if over := ms - float64(deadline)/float64(time.Millisecond); over > r.maxWriteOverDeadMs {
			r.maxWriteOverDeadMs = over
		}
	}
	if r.inFault {
		r.faultCalls++
		r.faultAttempts += int64(attempts)
	}
	if !r.healed.IsZero() && !end.Add(-lat).Before(r.healed.Add(recoverySettle)) {
		r.recovered++
		if ok {
			r.recOK++
		}
	}
}

// setFault marks whether calls recorded from now on fall in the fault window.
func (r *recorder) setFault(on bool) {
	r.mu.Lock()
	r.inFault = on
	r.mu.Unlock()
}

// setHealed records that the fault was healed at t.
func (r *recorder) setHealed(t time.Time) {
	r.mu.Lock()
	r.inFault, r.healed = false, t
	r.mu.Unlock()
}

// sample records the cluster epoch and the breaker states seen at t. A
// second keeps its last epoch and, per node, the worst state seen in it (0
// closed, 1 half-open, 2 open): a breaker open for less than a second still
// shows.
func (r *recorder) sample(t time.Time, epoch int64, breakers []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketAt(t)
	b.epoch = epoch
	if len(b.breakers) != len(breakers) {
		b.breakers = slices.Clone(breakers)
		return
	}
	for i, s := range breakers {
		b.breakers[i] = max(b.breakers[i], s)
	}
}

// lastSecond returns the figures of the bucket that ended most recently, for
// the live progress line.
func (r *recorder) lastSecond(now time.Time) (calls int64, success, p99 float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(now.Sub(r.start)/time.Second) - 1
	if i < 0 || i >= len(r.buckets) {
		return 0, 1, 0
	}
	b := r.buckets[i]
	return b.calls, ratio(b.ok, b.calls), percentile(b.lat, 0.99)
}

// fill writes the totals and the timeline into res.
func (r *recorder) fill(res *Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Calls = r.reads + r.writes
	res.ReadCalls, res.WriteCalls = r.reads, r.writes
	res.ReadAvailability = ratio(r.readsOK, r.reads)
	res.WriteAvailability = ratio(r.writesOK, r.writes)
	res.FailedCalls = r.failed
	res.CallsWithErrors = r.sawErrors
	res.P50ms = round3(percentile(r.all, 0.50))
	res.P99ms = round3(percentile(r.all, 0.99))
	res.ReadP99ms = round3(percentile(r.readLat, 0.99))
	res.MaxWriteOverDeadline = round3(max(0, r.maxWriteOverDeadMs))
	if r.faultCalls > 0 {
		res.AttemptsPerCallFault = round3(float64(r.faultAttempts) / float64(r.faultCalls))
	}
	if !r.healed.IsZero() {
		res.HealedAt = round3(r.healed.Sub(r.start).Seconds())
		res.CallsAfterHeal = r.recovered
		if r.recovered > 0 {
			ok := round3(ratio(r.recOK, r.recovered))
			res.SuccessAfterHeal = &ok
		}
	}
	var epoch int64
	var breakers []int
	for i, b := range r.buckets {
		if b.epoch != 0 {
			epoch = b.epoch
		}
		if b.breakers != nil {
			breakers = b.breakers
		}
		res.Timeline = append(res.Timeline, Tick{
			T:               float64(i + 1),
			Calls:           b.calls,
			SuccessRate:     round3(ratio(b.ok, b.calls)),
			P50ms:           round3(percentile(b.lat, 0.50)),
			P99ms:           round3(percentile(b.lat, 0.99)),
			AttemptsPerCall: round3(ratio(b.attempts, b.calls)),
			Epoch:           epoch,
			Breakers:        breakers,
		})
	}
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// percentile returns the q-quantile of xs (nearest rank); xs is sorted in place.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(q*float64(len(xs))+0.5) - 1
	i = max(0, min(len(xs)-1, i))
	return xs[i]
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}
