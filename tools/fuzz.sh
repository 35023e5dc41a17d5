#!/usr/bin/env bash
# Builds dre's libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and UBSan into
# build-fuzz/, and runs each for a bounded time on a scratch copy of its committed seeds
# (tests/fuzz/seeds/<target>/), after replaying tests/fuzz/regressions/<target>/.
#   tools/fuzz.sh [seconds_per_target] [target...]     (default 20 s, every target)
# Prints one line per target:  fuzz <target>: <execs> execs in <s> s, 0 crashes
# and exits non-zero if any target crashed, leaked, timed out or ran out of memory; the
# input that did it is kept under build-fuzz/crashes/<target>/ and its path printed.
# Env: CC (default clang). Two targets can run at once from two invocations.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${1:-20}
shift || true
case $seconds in '' | *[!0-9]*) echo "usage: tools/fuzz.sh [seconds_per_target] [target...]" >&2; exit 2 ;; esac
all_targets="tokenizer safetensors config corpus queries qrels bm25 serve_request serve_tei"
targets=${*:-$all_targets}
cc=${CC:-clang}
out=build-fuzz
model_dir="$root/models/all-MiniLM-L6-v2"

# the src/ files each target needs (host C only: no CUDA, no BLAS)
sources_of() {
  case $1 in
    tokenizer) echo "text/tokenizer text/tokenizer_load text/codepoints text/vocab common/common" ;;
    safetensors) echo "model/safetensors common/common" ;;
    config) echo "model/model model/config model/safetensors model/sha256 text/tokenizer text/tokenizer_load text/codepoints text/vocab common/common" ;;
    corpus) echo "text/corpus common/common" ;;
    queries) echo "text/queries common/common" ;;
    qrels) echo "search/eval common/common" ;;
    bm25) echo "index/docstore index/docstore_bm25 common/common" ;;
    serve_request) echo "serve/request search/options common/common" ;;
    serve_tei) echo "serve/tei serve/request search/options text/tokenizer text/tokenizer_load text/codepoints text/vocab common/common" ;;
    *) echo "fuzz.sh: unknown target '$1' (targets: $all_targets)" >&2; return 1 ;;
  esac
}

command -v "$cc" >/dev/null || { echo "fuzz.sh: $cc not found (needs clang with libFuzzer)" >&2; exit 1; }
for t in $targets; do sources_of "$t" >/dev/null; done
if [ ! -f "$model_dir/vocab.txt" ]; then
  echo "fuzz.sh: $model_dir/vocab.txt is missing: run tools/setup.sh first" >&2
  exit 1
fi
utf8proc=$(ls /usr/lib/*/libutf8proc.a 2>/dev/null | head -n 1 || true)
[ -n "$utf8proc" ] || utf8proc=-lutf8proc
libs="-lcjson $utf8proc -lsqlite3 -lm"

# --- build ---------------------------------------------------------------------
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=c11 -g -O1 -Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc $san"
mkdir -p "$out/obj"
# No coverage feedback inside the tokenizer's code point classifier: dre_tokenizer_open
# runs it over every BMP code point, and comparison tracing there made opening a fuzzed
# model folder 40 ms (it is table lookups on fixed data: nothing for the fuzzer to learn).
ignore="$out/coverage_ignore.txt"
printf 'fun:%s\n' build_classes dre_cp_flags in_ranges dre_cp_nonstarter_class dre_cp_lower dre_cp_nfd >"$ignore.$$"
if cmp -s "$ignore.$$" "$ignore"; then rm -f "$ignore.$$"; else mv -f "$ignore.$$" "$ignore"; fi
needed=""
for t in $targets; do needed="$needed $(sources_of "$t")"; done
for s in $(echo "$needed" | tr ' ' '\n' | sort -u); do
  obj="$out/obj/${s//\//_}.o"
  if [ ! -f "$obj" ] || [ "src/$s.c" -nt "$obj" ] || [ tools/fuzz.sh -nt "$obj" ] || [ "$ignore" -nt "$obj" ] ||
     [ -n "$(find src include -name '*.h' -newer "$obj" | head -n 1)" ]; then
    # built under a name of its own, then renamed: two runs at once never mix halves
    "$cc" $cflags -fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist="$ignore" \
      -c "src/$s.c" -o "$obj.$$"
    mv -f "$obj.$$" "$obj"
  fi
done
for t in $targets; do
  objs=""
  for s in $(sources_of "$t"); do objs="$objs $out/obj/${s//\//_}.o"; done
  "$cc" $cflags -Werror -fsanitize=fuzzer -DFUZZ_MODEL_DIR="\"$model_dir\"" \
    "tests/fuzz/fuzz_$t.c" $objs $libs -o "$out/fuzz_$t.$$"
  mv -f "$out/fuzz_$t.$$" "$out/fuzz_$t"
done

# --- run -----------------------------------------------------------------------
# Huge allocations asked for by a fuzzed config are refused (dre reports DRE_ERR_NOMEM)
# rather than counted as crashes; anything up to 1 GiB is allowed.
export ASAN_OPTIONS="allocator_may_return_null=1:max_allocation_size_mb=1024:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
scratch="$out/scratch-$$" # working corpora and temporary files of this run only
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/tmp"
export TMPDIR="$root/$scratch/tmp"
failed=0
for t in $targets; do
  work="$scratch/corpus/$t"
  crashes="$out/crashes/$t"
  mkdir -p "$work" "$crashes"
  cp -r "tests/fuzz/seeds/$t/." "$work/" 2>/dev/null || true
  dict=""
  [ "$t" = tokenizer ] || dict="-dict=tests/fuzz/fuzz.dict"
  log="$out/fuzz_$t.log"
  start=$(date +%s.%N)
  set +e
  # inputs that once crashed it run first, as a second corpus folder libFuzzer only reads
  regressions=""
  [ -d "tests/fuzz/regressions/$t" ] && regressions="tests/fuzz/regressions/$t"
  "./$out/fuzz_$t" "$work" $regressions -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$crashes/" $dict >"$log" 2>&1
  rc=$?
  set -e
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  # the final stats, or after a crash (no stats) the last progress line's "#<execs>"
  execs=$(awk '/^stat::number_of_executed_units:/ { n = $2; done = 1 }
               /^#[0-9]+/ && !done { last = substr($1, 2) }
               END { print done ? n : last + 0 }' "$log")
  found=$(find "$crashes" -type f -newermt "@${start%.*}" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
    echo "fuzz $t: $execs execs in $took s, 0 crashes"
  else
    failed=1
    n=$(printf '%s\n' "$found" | grep -c . || true)
    echo "fuzz $t: $execs execs in $took s, $n crash(es) (exit $rc); log: $log"
    for f in $found; do echo "  input kept: $f"; done
    grep -m 3 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*fuzz check failed)' "$log" | sed 's/^/  /' || true
  fi
done
exit $failed
