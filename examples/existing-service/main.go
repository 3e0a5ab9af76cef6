// Command existing-service shows an ordinary HTTP service made resilient by
// changing only where its HTTP clients are built. The service, shop, answers
// GET /order by reading the item from an inventory service and posting a
// quote request to a pricing service. Its handler is plain net/http; the only
// rampart calls in it are two per-request overrides: the partition key of each
// downstream call, and the Idempotency-Key it passes on to pricing, which lets
// rampart retry that POST.
//
// The program starts both downstream clusters on loopback, crashes the
// inventory primary, browns out the pricing primary (every second request
// fails with 503), and prints what the shop's callers saw.
//
// Run it with:
//
//	go run ./examples/existing-service
//
// It exits with status 1 if the shop did not behave as described.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/rampart-go/rampart/clustertest"
	"github.com/rampart-go/rampart/httpmw"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/topology"
)

// shop is the existing service. Its handler would look the same with plain
// http.Clients, but for the two lines marked "rampart".
type shop struct {
	inventory *http.Client // reads items from http://inventory/items/<item>
	pricing   *http.Client // posts quotes to http://pricing/quotes
}

func (s *shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	item, customer := r.URL.Query().Get("item"), r.URL.Query().Get("customer")

	// Read the item; inventory is partitioned by item.
	ctx := httpmw.WithPartitionKey(r.Context(), item) // rampart
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://inventory/items/"+url.PathEscape(item), nil)
	if err == nil {
		err = send(s.inventory, req)
	}
	if err != nil {
		http.Error(w, "inventory: "+err.Error(), http.StatusBadGateway)
		return
	}

	// Ask for a quote; pricing is partitioned by customer. A POST is
	// retried only with an Idempotency-Key: pass on the caller's.
	body, _ := json.Marshal(map[string]string{"item": item, "customer": customer})
	ctx = httpmw.WithPartitionKey(r.Context(), customer) // rampart
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, "http://pricing/quotes", bytes.NewReader(body))
	if err == nil {
		req.Header.Set(clustertest.HeaderBodySHA256, clustertest.BodySHA256(body)) // lets the node check replays
		if key := r.Header.Get("Idempotency-Key"); key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		err = send(s.pricing, req)
	}
	if err != nil {
		http.Error(w, "pricing: "+err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintf(w, "ordered %s for %s\n", item, customer)
}

// send sends req and fails unless the answer is 200.
func send(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// newClient is the one place that changes. Before rampart it returned
// &http.Client{Transport: base}; now it returns the preset for one logical
// host of a partitioned cluster.
func newClient(base *http.Transport, host string, w *topology.Watcher, port int) *http.Client {
	return httpmw.NewClient(
		httpmw.WithTransport(base),
		httpmw.WithService(httpmw.Service{Host: host, Topology: w, Port: port}),
		httpmw.WithRetry(&retry.Policy{BaseDelay: 5 * time.Millisecond}), // quick retries for the demo
	)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "existing-service:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	// The two downstream services, one partition each.
	inventory, invWatcher, stopInv, err := startService("127.0.13.1", "127.0.13.2")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopInv()) }()
	pricing, priceWatcher, stopPrice, err := startService("127.0.14.1", "127.0.14.2")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopPrice()) }()

	// The shop, with its clients built by newClient.
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	s := &shop{
		inventory: newClient(base, "inventory", invWatcher, inventory.HTTPPort()),
		pricing:   newClient(base, "pricing", priceWatcher, pricing.HTTPPort()),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	shopURL := "http://" + ln.Addr().String()

	// The shop's own callers use a plain client.
	caller := &http.Client{Timeout: 5 * time.Second}
	defer caller.CloseIdleConnections()
	order := func(i int, idempotencyKey bool) bool {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/order?item=item-%d&customer=customer-%d", shopURL, i, i%7), nil)
		if idempotencyKey {
			req.Header.Set("Idempotency-Key", fmt.Sprintf("order-%d", i))
		}
		return send(caller, req) == nil
	}

	// Faults: the inventory primary crashes, the pricing primary fails every
	// second request with 503.
	invPrimary, invReplica := inventory.Node("127.0.13.1"), inventory.Node("127.0.13.2")
	pricePrimary, priceReplica := pricing.Node("127.0.14.1"), pricing.Node("127.0.14.2")
	invPrimary.Crash()
	pricePrimary.SetErrorRate(0.5)
	fmt.Println("faults: inventory primary crashed; pricing primary fails every second request")

	// 20 orders whose callers send an Idempotency-Key.
	const orders = 20
	ok := 0
	for i := range orders {
		if order(i, true) {
			ok++
		}
	}
	invServed := invReplica.Requests()
	pricingFailures := pricePrimary.Requests() - orders
	fmt.Printf("orders with an Idempotency-Key: %d/%d succeeded\n", ok, orders)
	fmt.Printf("inventory reads served by the replica: %d\n", invServed)
	fmt.Printf("pricing POSTs that got a 503 and were retried on the primary: %d\n", pricingFailures)
	fmt.Printf("pricing writes sent to the replica: %d\n", priceReplica.Requests())
	fmt.Printf("POST bodies replayed byte for byte: %t\n", pricePrimary.BodyMismatches() == 0)

	// 2 orders without an Idempotency-Key: the count of the fault starts
	// again, so the first POST passes and the second gets a 503, which the
	// shop must not retry.
	pricePrimary.SetErrorRate(0.5)
	before := pricePrimary.Requests()
	okWithout := 0
	for i := orders; i < orders+2; i++ {
		if order(i, false) {
			okWithout++
		}
	}
	sent := pricePrimary.Requests() - before
	fmt.Printf("orders without an Idempotency-Key: %d/2 succeeded, pricing POSTs sent: %d (the failed one was not retried)\n", okWithout, sent)

	good := ok == orders && invServed == orders && pricingFailures == orders-1 &&
		priceReplica.Requests() == 0 && okWithout == 1 && sent == 2
	fmt.Printf("shop behaved as described: %t\n", good)
	if !good {
		return errors.New("unexpected results")
	}
	return nil
}

// startService starts a one-partition cluster with a primary and a replica,
// and a watcher of its topology. stop stops both, and returns the
// cluster's Close error: requests still in flight would mean a leak.
func startService(primary, replica string) (*clustertest.Cluster, *topology.Watcher, func() error, error) {
	m := &topology.Map{Epoch: 1, PartitionCount: 1, Partitions: []topology.Partition{
		{Index: 0, Primary: primary, Replicas: []string{replica}, HashStart: 0, HashEnd: 0xffffffff},
	}}
	// Nodes report to the master every 50ms; one silent for 1s is dead.
	cluster, err := clustertest.Start(m, clustertest.WithHeartbeat(50*time.Millisecond, time.Second))
	if err != nil {
		return nil, nil, nil, err
	}
	watcher := topology.NewWatcher(topology.HTTP(cluster.TopologyURL()), topology.WithInterval(50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = watcher.Run(ctx) }()
	stop := func() error {
		cancel()
		<-done
		return cluster.Close()
	}
	wait, cancelWait := context.WithTimeout(ctx, 5*time.Second)
	defer cancelWait()
	if _, err := watcher.Wait(wait); err != nil {
		return nil, nil, nil, errors.Join(err, stop())
	}
	return cluster, watcher, stop, nil
}
