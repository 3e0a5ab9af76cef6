package grpcmw

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
)

// nopStream is a ClientStream that does nothing.
type nopStream struct{ grpc.ClientStream }

// gRPC may finish a stream (its ClientConn closing) after the streamer
// returned it but before the wrapper's start has: the finishing callback
// leaves the end to start then, and start must end the stream.
func TestEndStreamFinishedBeforeStart(t *testing.T) {
	var got []error
	es := newEndStream(&grpc.StreamDesc{ServerStreams: true}, false, func(err error) { got = append(got, err) })
	opts := es.opts(nil)
	closing := errors.New("closing")
	opts[0].(grpc.OnFinishCallOption).OnFinish(closing) // before start
	if len(got) != 0 {
		t.Fatalf("ended before start: %v", got)
	}
	if _, err := es.start(context.Background(), nopStream{}, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != closing {
		t.Fatalf("ends: %v, want one, with gRPC's status", got)
	}
}
