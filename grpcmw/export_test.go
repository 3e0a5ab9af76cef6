package grpcmw

import "google.golang.org/grpc"

// PresetUnary returns the unary interceptor DialOptions(opts...) installs.
func PresetUnary(opts ...Option) grpc.UnaryClientInterceptor {
	_, unary, _ := newPreset(newConfig(opts))
	return unary.unary
}
