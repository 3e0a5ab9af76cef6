package metrictest

import (
	"testing"

	"github.com/rampart-go/rampart/sampling"
)

// The attribute key this package names itself is sampling's.
func TestPropagatedSpanIDKey(t *testing.T) {
	if propagatedSpanID != sampling.AttrPropagatedSpanID {
		t.Errorf("key %q, sampling's is %q", propagatedSpanID, sampling.AttrPropagatedSpanID)
	}
}
