#!/usr/bin/env bash
# bench_serve.sh — dre serve beside the Python peer (tools/bench/peer_server.py: FastAPI,
# sentence-transformers, FAISS) on the same machine in the same run: for /search and
# /v1/embeddings at 1, 8 and 64 concurrent clients, each server gets the same load from
# wrk for a fixed time (alternating, dre first) and one line per measurement is printed:
#   bench=serve who=dre endpoint=/search concurrency=64 requests=... qps=... p50_ms=...
#   p95_ms=... p99_ms=... errors=...
# then a ratio line per endpoint and concurrency.
# usage: tools/bench/bench_serve.sh [seconds_per_run (default 10)] [corpus.jsonl]
# Needs: build/dre, wrk (tools/setup.sh), the fixture tools (DRE_SETUP_FIXTURE_TOOLS=1
# tools/setup.sh) and fastapi + uvicorn (pip).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-10}
corpus=${2:-tests/data/papers.jsonl}
model=models/all-MiniLM-L6-v2
work=$(mktemp -d)
dre_port=18471
peer_port=18472
cleanup() {
  [ -n "${dre_pid:-}" ] && kill -TERM "$dre_pid" 2>/dev/null && wait "$dre_pid" 2>/dev/null
  [ -n "${peer_pid:-}" ] && kill -TERM "$peer_pid" 2>/dev/null && wait "$peer_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

build/dre embed -q --device cpu --no-bm25 --model "$model" --corpus "$corpus" --index "$work/index"
build/dre serve --index "$work/index" --model "$model" --device cpu --port "$dre_port" \
  --log-level warn 2>"$work/dre.log" &
dre_pid=$!
python3 tools/bench/peer_server.py --corpus "$corpus" --model "$model" --port "$peer_port" \
  2>"$work/peer.log" &
peer_pid=$!
for port in $dre_port $peer_port; do
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$work"/*.log >&2; exit 1; }
done

# wrk: one POST body for every request; the percentiles wrk keeps, printed by done()
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
function done(summary, latency, requests)
  io.write(string.format("result requests=%d seconds=%.3f errors=%d p50_us=%d p95_us=%d p99_us=%d\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
EOF

search_body='{"query": "speeding up diffusion transformers without retraining", "k": 10}'
embed_body='{"input": "efficient attention for long sequences in vision transformers"}'
declare -A qps
for endpoint in /search /v1/embeddings; do
  body=$search_body
  [ "$endpoint" = /v1/embeddings ] && body=$embed_body
  for c in 1 8 64; do
    threads=2
    [ "$c" -lt 2 ] && threads=1
    for who in dre peer; do
      port=$dre_port
      [ "$who" = peer ] && port=$peer_port
      out=$(BENCH_BODY=$body wrk -t"$threads" -c"$c" -d"${seconds}s" --timeout 30s \
        -s "$work/post.lua" "http://127.0.0.1:$port$endpoint" | grep '^result ')
      eval "$(echo "$out" | sed 's/^result //' | tr ' ' '\n' | sed 's/^/r_/')"
      q=$(awk -v n="$r_requests" -v s="$r_seconds" 'BEGIN { printf "%.1f", n / s }')
      qps[$who$endpoint$c]=$q
      printf 'bench=serve who=%s endpoint=%s concurrency=%d requests=%d qps=%s p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f errors=%d\n' \
        "$who" "$endpoint" "$c" "$r_requests" "$q" "$(echo "$r_p50_us/1000" | bc -l)" \
        "$(echo "$r_p95_us/1000" | bc -l)" "$(echo "$r_p99_us/1000" | bc -l)" "$r_errors"
    done
    awk -v a="${qps[dre$endpoint$c]}" -v b="${qps[peer$endpoint$c]}" -v e="$endpoint" -v c="$c" \
      'BEGIN { printf "bench=serve what=ratio endpoint=%s concurrency=%d dre_over_peer_qps=%.2f\n", e, c, (b > 0 ? a / b : 0) }'
  done
done
