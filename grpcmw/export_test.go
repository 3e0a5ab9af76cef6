package grpcmw

import (
	"time"

	"google.golang.org/grpc"
)

// PresetUnary returns the unary interceptor DialOptions(opts...) installs.
func PresetUnary(opts ...Option) grpc.UnaryClientInterceptor {
	_, unary, _ := newPreset(newConfig(opts))
	return unary.unary
}

// SetRouterClock makes r read the time from now (for its throttle record).
func SetRouterClock(r *Router, now func() time.Time) { r.now = now }

// SetRouterWaitHook makes r call fn when a call starts waiting for the
// watcher's first map.
func SetRouterWaitHook(r *Router, fn func()) { r.waiting = fn }
