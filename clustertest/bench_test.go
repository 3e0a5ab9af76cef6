package clustertest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/clustertest/discoverypb"
)

func BenchmarkNodeHTTPGet(b *testing.B) {
	c := clustertest.New(b, threePartitions(b), fast)
	hc := httpClient(b)
	url := c.Node("127.0.1.5").URL() + "/bench"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkNodeGRPCEcho(b *testing.B) {
	c := clustertest.New(b, threePartitions(b), fast)
	ec := discoverypb.NewEchoClient(grpcConn(b, c.Node("127.0.1.5").GRPCAddr()))
	ctx := testCtx(b)
	req := &discoverypb.EchoRequest{Payload: []byte("payload"), Sha256: clustertest.BodySHA256([]byte("payload"))}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ec.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTopologyGet(b *testing.B) {
	c := clustertest.New(b, threePartitions(b), fast)
	hc := httpClient(b)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Get(c.TopologyURL())
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}
