#!/usr/bin/env bash
# benchpairs.sh compares two sub-benchmarks of one benchmark as interleaved
# pairs, each run in its own process, alternating which runs first, and
# prints the median and a bootstrap 95% interval of the paired ratios of
# sec/op (and of cpu-ns/op, when the benchmark reports it). On a noisy
# machine this resolves differences of a few percent that one benchstat
# comparison of two runs cannot.
#
# usage: tools/benchpairs.sh PKG BENCH A B [N] [BENCHTIME]
#   e.g. tools/benchpairs.sh ./grpcmw Loopback bare preset 30 2s
# The ratio printed is A's sec/op over B's: B's throughput relative to A's.
# Needs go and python3.
set -euo pipefail
pkg=$1 bench=$2 a=$3 b=$4 n=${5:-30} bt=${6:-2s}
bin=$(mktemp -d)/bench.test
out=$(mktemp)
go test -c -o "$bin" "$pkg"
cd "$pkg"
for i in $(seq "$n"); do
	if ((i % 2)); then order="$a $b"; else order="$b $a"; fi
	for c in $order; do
		"$bin" -test.run '^$' -test.bench "^Benchmark$bench/$c\$" -test.benchtime="$bt" |
			grep '^Benchmark' | sed "s/^/$i /" >>"$out"
	done
done
python3 - "$out" "$a" "$b" <<'PY'
import random, statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    name = f[1].split("/")[1].rsplit("-", 1)[0]
    vals = {f[k + 1]: float(f[k]) for k in range(3, len(f) - 1, 2)}
    rows.setdefault(f[0], {})[name] = vals
a, b = sys.argv[2], sys.argv[3]
pairs = [v for v in rows.values() if a in v and b in v]
random.seed(1)
for unit in ("ns/op", "cpu-ns/op"):
    r = [p[a][unit] / p[b][unit] for p in pairs if unit in p[a] and unit in p[b]]
    if not r:
        continue
    boot = sorted(st.median(random.choices(r, k=len(r))) for _ in range(4000))
    print(f"{unit:10s} {a}/{b}: n={len(r)} median {st.median(r):.3f} "
          f"95% CI [{boot[100]:.3f}, {boot[3900]:.3f}]")
PY
