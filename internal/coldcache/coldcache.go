// Package coldcache lets an in-process benchmark run each operation the way
// it runs inside a busy process: with the CPU's private caches holding
// somebody else's data.
//
// A benchmark that calls a middleware chain against a stub in a tight loop
// keeps the chain's code and data in L1 and L2 from one call to the next,
// and so measures the least the chain can cost. In a real call, the network
// stack, the codec and the server run between two passes through the chain
// and evict it, and every line the chain touches is a miss again. On the
// 2-core EPYC machine the chains cost three to five times as much that way
// as in the tight loop, which is the gap the loopback benchmarks show.
// Benchmarks that call Evict before each operation measure that cost, and
// so what shrinking a chain's footprint (bytes allocated, maps consulted,
// lines touched) is worth.
package coldcache

// size is twice the private caches of a core of the machine the benchmarks
// run on (32 KiB of L1 data, 32 KiB of L1 instructions, 512 KiB of L2), and
// as large as the L2 of most current x86 cores.
const size = 1 << 20

var (
	buf  = make([]byte, size)
	sink byte
)

// Evict writes one byte in every 64-byte line of a 1 MiB buffer, pushing
// the caller's recent code and data out of the core's private caches. It
// takes tens of microseconds: compare a chain against the same benchmark
// without the chain, both with Evict, and read the difference.
//
// Evict is not safe for concurrent use; call it from one goroutine.
func Evict() {
	var s byte
	for i := 0; i < len(buf); i += 64 {
		buf[i]++
		s += buf[i]
	}
	sink = s
}
