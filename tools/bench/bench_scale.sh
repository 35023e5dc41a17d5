#!/usr/bin/env bash
# bench_scale.sh — dre over several processes (mpirun) beside one process, on this machine, in
# the same run; one line per measurement:
#   bench=scale what=embed ranks=R threads=T docs=N seconds=S docs_per_s=X
#     the corpus embedded by 1 rank x C threads and by C ranks x 1 thread (C: the cores), the
#     whole command's wall time (model loads and MPI start-up included); the two indexes'
#     vectors are checked equal bit for bit
#   bench=scale what=search shards=1|C queries=Q seconds=S qps=X
#     dense dre search of the queries file in one process over the 1-shard and the C-shard index
#   bench=scale what=serve ranks=1|C qps=X p50_ms p99_ms errors
#     /search under wrk (8 connections) against dre serve (unsharded) and mpirun -np C dre serve
# then ratio lines. On a GPU machine, gpu_proof.sh's "scale" stage runs 1 rank against one rank
# per GPU with --device gpu.
# usage: tools/bench/bench_scale.sh [corpus.jsonl] [queries.jsonl] [--device cpu|gpu]
#   default: the first 1,000 abstracts and 800 queries of ../shared/data/scifact-train (if there),
#   else the test SciFact subset (tests/data/scifact)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
device=cpu
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
work=$(mktemp -d)
shared=../shared/data/scifact-train
if [ -n "${args[0]:-}" ]; then
  corpus=${args[0]}
elif [ -f "$shared/corpus.jsonl" ]; then
  corpus=$work/corpus.jsonl
  head -n 1000 "$shared/corpus.jsonl" >"$corpus"
else
  corpus=tests/data/scifact/corpus.jsonl
fi
queries=${args[1]:-$([ -f "$shared/queries.jsonl" ] && echo "$shared/queries.jsonl" || echo tests/data/scifact/queries.jsonl)}
model=models/all-MiniLM-L6-v2
if [ "$device" = gpu ]; then
  ranks=$(nvidia-smi -L | wc -l)
else
  ranks=$(nproc)
fi
[ "$ranks" -ge 2 ] || ranks=2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
port1=18481
portn=18482
cleanup() {
  for p in ${pids:-}; do kill -USR1 "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
docs=$(grep -c . "$corpus")
nq=$(grep -c . "$queries")

# ---- embed: 1 rank x all the cores, then one rank per core (GPU: one rank per GPU)
t0=$(now)
OMP_NUM_THREADS=$([ "$device" = cpu ] && echo "$ranks" || echo 1) build/dre embed -q \
  --device "$device" --model "$model" --corpus "$corpus" --index "$work/one"
t1=$(now)
mpirun --oversubscribe --bind-to core -np "$ranks" build/dre embed -q --device "$device" \
  --model "$model" --corpus "$corpus" --index "$work/sharded"
t2=$(now)
one_s=$(echo "$t1 - $t0" | bc -l)
many_s=$(echo "$t2 - $t1" | bc -l)
one_threads=$([ "$device" = cpu ] && echo "$ranks" || echo 1)
printf 'bench=scale what=embed device=%s ranks=1 threads=%s docs=%d seconds=%.2f docs_per_s=%.1f\n' \
  "$device" "$one_threads" "$docs" "$one_s" "$(echo "$docs / $one_s" | bc -l)"
printf 'bench=scale what=embed device=%s ranks=%d threads=1 docs=%d seconds=%.2f docs_per_s=%.1f\n' \
  "$device" "$ranks" "$docs" "$many_s" "$(echo "$docs / $many_s" | bc -l)"
build/dre export "$work/one" "$work/one.npy" 2>/dev/null
build/dre export "$work/sharded" "$work/sharded.npy" 2>/dev/null
same=$(cmp -s "$work/one.npy" "$work/sharded.npy" && echo yes || echo no)
printf 'bench=scale what=embed_ratio ranks=%d speedup=%.2f vectors_bitwise_equal=%s\n' "$ranks" \
  "$(echo "$one_s / $many_s" | bc -l)" "$same"

# ---- search in one process: the 1-shard index against the sharded one
for idx in one sharded; do
  shards=$([ "$idx" = one ] && echo 1 || echo "$ranks")
  t0=$(now)
  build/dre search --device "$device" --mode dense -k 10 --model "$model" --queries "$queries" \
    --index "$work/$idx" >"$work/$idx.run"
  t1=$(now)
  s=$(echo "$t1 - $t0" | bc -l)
  printf 'bench=scale what=search shards=%s queries=%d seconds=%.2f qps=%.1f\n' "$shards" "$nq" "$s" \
    "$(echo "$nq / $s" | bc -l)"
done
printf 'bench=scale what=search_answers_equal %s\n' "$(cmp -s "$work/one.run" "$work/sharded.run" && echo yes || echo no)"

# ---- dre serve against mpirun -np N dre serve, /search under wrk
build/dre serve --index "$work/one" --model "$model" --device "$device" --port "$port1" \
  --log-level warn 2>"$work/serve1.log" &
pids="$!"
mpirun --oversubscribe --bind-to core -np "$ranks" build/dre serve --index "$work/sharded" \
  --model "$model" --device "$device" --port "$portn" --log-level warn 2>"$work/serven.log" &
pids="$pids $!"
for port in $port1 $portn; do
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
  done
done
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
function done(summary, latency, requests)
  io.write(string.format("result requests=%d seconds=%.3f errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
EOF
body='{"query": "stem cells in the bone marrow niche", "k": 10, "mode": "hybrid"}'
declare -A qps
for who in 1 "$ranks"; do
  port=$([ "$who" = 1 ] && echo $port1 || echo $portn)
  out=$(BENCH_BODY=$body wrk -t2 -c8 -d10s --timeout 30s -s "$work/post.lua" \
    "http://127.0.0.1:$port/search" | grep '^result ')
  eval "$(echo "$out" | sed 's/^result //' | tr ' ' '\n' | sed 's/^/r_/')"
  qps[$who]=$(awk -v n="$r_requests" -v s="$r_seconds" 'BEGIN { printf "%.1f", n / s }')
  printf 'bench=scale what=serve ranks=%s qps=%s p50_ms=%.1f p99_ms=%.1f errors=%d\n' "$who" \
    "${qps[$who]}" "$(echo "$r_p50_us/1000" | bc -l)" "$(echo "$r_p99_us/1000" | bc -l)" "$r_errors"
done
awk -v a="${qps[$ranks]}" -v b="${qps[1]}" -v r="$ranks" \
  'BEGIN { printf "bench=scale what=serve_ratio ranks=%d over_one_process=%.2f\n", r, (b > 0 ? a / b : 0) }'
