#!/usr/bin/env bash
# mutate.sh — is the suite sharp? Each mutation below is a one-line change of product code that
# a correct suite must notice: applied, built incrementally, the tests named beside it run
# (under a time limit), then reverted. Prints a line per mutation — killed (and by which
# tests) or SURVIVED — and the score. A mutation that no longer applies (its line changed) or
# does not compile stops the run: the list must stay true to the code.
#   tools/mutate.sh [--list] [--only N[,N...]] [--timeout SECONDS]   (default 600 a mutation)
# Builds in build-mutate/ without CUDA (GPU code runs on the CUDA emulation, emu_* tests);
# the set-up (tools/setup.sh) must have run. A tool, not a CI step: about 30-60 min in all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# id <TAB> file <TAB> line as it is <TAB> line as mutated <TAB> test binaries <TAB> what it breaks
mutations=$(cat <<'EOF'
1	src/text/tokenizer_impl.h	#define MAX_WORD_CHARS 100 	#define MAX_WORD_CHARS 99 	tokenizer_test	WordPiece's 100-character word limit one short
2	src/text/codepoints.c	if (IN(cjk_ranges, cp)) f |= CP_CJK;	if (0) f |= CP_CJK;	tokenizer_test	CJK characters not spaced out
3	src/text/tokenizer.c	} else if (cp == 0x130) { /* the one full lower-case mapping that expands */	} else if (cp == 0x131) { /* the one full lower-case mapping that expands */	tokenizer_test	U+0130 lower-cased to one character, not i + U+0307
4	src/text/sequences.c	int32_t stride = window - t->chunk_overlap;	int32_t stride = window - t->chunk_overlap + 1;	chunk_test	chunks overlap one wordpiece less
5	src/text/corpus.c	        n = title_len + 1;	        n = title_len;	corpus_test pipeline_test	title and text joined without their space
6	src/text/queries.c	snprintf(id, sizeof id, "%ld", line);	snprintf(id, sizeof id, "%ld", line + 1);	queries_test	a plain-lines query's id one past its line
7	src/text/packer.c	memcpy(out + (size_t)p->order[first + s].index * p->dim,	memcpy(out + (size_t)p->order[s].index * p->dim,	encoder_cpu_test	vectors of later batches scattered to the first batch's rows
8	src/cpu/ops.c	float rstd = (float)(1.0 / sqrt(sq / n + (double)eps));	float rstd = (float)(1.0 / sqrt(sq / (n - 1) + (double)eps));	encoder_cpu_test emu_kernels_layernorm_test	LayerNorm's variance unbiased (divided by n - 1)
9	src/cpu/ops.c	memcpy(o, hidden + (size_t)start * dim, (size_t)dim * sizeof *o);	memcpy(o, hidden + (size_t)(start + 1) * dim, (size_t)dim * sizeof *o);	encoder_cpu_test	CLS pooling takes the second token
10	src/cpu/vmath.h	_mm512_set1_ps((float)(1.0 / __builtin_sqrt(var + (double)eps)));	_mm512_set1_ps((float)(1.0 / __builtin_sqrt(var)));	cpu_gemm_test	LayerNorm's eps dropped on the AVX-512 path
11	src/cpu/attention.c	const __m512 vscale = _mm512_set1_ps(scale);	const __m512 vscale = _mm512_set1_ps(1.0f);	cpu_gemm_test encoder_cpu_test	attention scores not scaled by 1/sqrt(head_dim)
12	src/cpu/gemm.c	if (epi != CPU_EPI_NONE) v0 = _mm512_add_ps(v0, bias0), v1 = _mm512_add_ps(v1, bias1);	if (epi != CPU_EPI_NONE) v0 = _mm512_add_ps(v0, bias0), v1 = _mm512_sub_ps(v1, bias1);	cpu_gemm_test encoder_cpu_test	the bias subtracted from the second 16 columns of a panel
13	kernels/warp.cuh	const float rstd = rsqrtf(halfwarp_sum(sq) * inv_hidden + eps);	const float rstd = rsqrtf(halfwarp_sum(sq) * inv_hidden);	emu_kernels_layernorm_test emu_kernels_embed_layernorm_test	LayerNorm's eps dropped on the GPU
14	kernels/gelu.cu	return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));	return 0.5f * v * (1.0f + erff(v));	emu_kernels_gelu_test	GELU's erf argument not divided by sqrt 2
15	kernels/pooling.cu	const float scale = 1.0f / fmaxf(sqrtf(warp_sum(sq)), 1e-12f);	const float scale = 1.0f / fmaxf(warp_sum(sq), 1e-12f);	emu_kernels_pooling_test	vectors divided by their squared norm
16	kernels/topk.cu	return key_a > key_b || (key_a == key_b && id_a > id_b);	return key_a > key_b || (key_a == key_b && id_a < id_b);	emu_kernels_topk_test emu_gpu_search_test	equal scores kept in the wrong id order
17	kernels/attention.cu	qkv, qkv_bias, cu_seqlens, n_heads, n_qtiles, scale_log2, out);	qkv, qkv_bias, cu_seqlens, n_heads, n_qtiles, scale_log2 * 0.5f, out);	emu_kernels_attention_test	the default attention (mma) scores scaled by half
18	kernels/embed_layernorm.cu	p = t - cu_seqlens[sequence_of(cu_seqlens, n_seqs, t)];	p = t - cu_seqlens[0];	emu_kernels_embed_layernorm_test	positions not restarted for each sequence of a batch
19	src/gpu/search.c	#define WORSE(a, b) (heap_s[a] < heap_s[b] || (heap_s[a] == heap_s[b] && heap_id[a] < heap_id[b]))	#define WORSE(a, b) (heap_s[a] < heap_s[b] || (heap_s[a] == heap_s[b] && heap_id[a] > heap_id[b]))	emu_gpu_search_test	fp16 search's re-scoring keeps equal scores in the wrong order
20	src/gpu/encoder.c	in->normalize, enc->pooled, s));	0, enc->pooled, s));	emu_encoder_gpu_test	the GPU encoder's vectors not normalised
21	src/index/writer.c	int64_t row = w->base_count + w->count;	int64_t row = w->count;	pipeline_test	--append numbers its documents from row 0
22	src/index/writer.c	DRE_TRY(dre_docstore_add_chunk(w->docs, w->base_vectors + w->vectors + w->pending + i, row,	DRE_TRY(dre_docstore_add_chunk(w->docs, w->vectors + w->pending + i, row,	pipeline_test	--append to a chunked index numbers its chunks from 0
23	src/index/checkpoint.c	cJSON_AddNumberToObject(root, "line", (double)c->line);	cJSON_AddNumberToObject(root, "line", (double)c->line + 1);	pipeline_test	a resumed run's line numbers (plain-lines ids) one off
24	src/index/docstore.c	int ok = b->n_terms == 0 || expr_put(b, " OR ", 4);	int ok = b->n_terms == 0 || expr_put(b, " AND ", 5);	bm25_test	a BM25 query's terms AND-ed
25	src/index/docstore.c	"ORDER BY bm25(docs_fts), rowid LIMIT ?",	"ORDER BY bm25(docs_fts), rowid DESC LIMIT ?",	bm25_test	BM25 ties in descending row order
26	src/search/fusion.c	if (h->dense_rank) s += 1.0 / (rrf_k + h->dense_rank);	if (h->dense_rank) s += 1.0 / (rrf_k + h->dense_rank + 1);	fusion_test eval_e2e_test	RRF counts dense ranks from 2
27	src/search/fusion.c	return span > 0 ? (score - lo) / span : 1.0;	return span > 0 ? (score - lo) / span : 0.0;	fusion_test	a list of equal scores normalised to 0, not 1
28	src/search/searcher.c	int32_t depth = mode == DRE_SEARCH_HYBRID ? (o->depth > k ? o->depth : k) : k;	int32_t depth = k;	server_test eval_e2e_test	hybrid search fuses only the top k of each list
29	src/search/options.c	#define DEFAULT_RRF_K 60.0	#define DEFAULT_RRF_K 61.0	eval_e2e_test cli_test	RRF's default k 61
30	src/search/eval.c	dcg += (double)g / log2((double)(i + 2));	dcg += (double)g / log2((double)(i + 3));	eval_test	DCG discounted one rank late
31	src/search/eval.c	        if (i < 10) {	        if (i < 9) {	eval_test	the metrics @10 cut at 9
32	src/search/eval.c	out->recall_100 = jq->n_relevant ? (double)rel_100 / (double)jq->n_relevant : 0.0;	out->recall_100 = jq->n_relevant ? (double)rel_10 / (double)jq->n_relevant : 0.0;	eval_test	Recall@100 counted at 10
33	src/serve/request.c	if (!st) st = read_number(root, "alpha", 0, 1, &o->alpha, err, cap);	if (!st) st = read_number(root, "alpha_", 0, 1, &o->alpha, err, cap);	server_test	the service ignores "alpha"
34	src/serve/http.c	if (strlen(h) != n) return 0;	if (strlen(h) < n) return 0;	server_test	the API key accepted with anything after it
35	src/serve/response.c	out[o++] = table[v >> 12 & 63];	out[o++] = table[v >> 13 & 63];	server_test	base64 embeddings with a wrong second character
36	src/serve/queue.c	*(embeddings ? &d : &qi) += (size_t)r->n_texts;	*(embeddings ? &d : &qi) += 1;	server_test	a batch's later requests get the wrong vectors
37	src/serve/connections.c	if (c->shut || c->deadline == 0 || now < c->deadline) continue;	if (c->shut || c->deadline == 0 || now < c->deadline + 5) continue;	serve_guard_test	connections cut 5 s past their deadline
38	src/model/safetensors.c	uint32_t bits = (uint32_t)(data[2 * i] | data[2 * i + 1] << 8) << 16;	uint32_t bits = (uint32_t)(data[2 * i] | data[2 * i + 1] << 8) << 15;	model_test	bf16 weights read one bit off
39	src/model/config.c	if (cJSON_IsString(mode) && strcmp(mode->valuestring, "cls") == 0) {	if (cJSON_IsString(mode) && strcmp(mode->valuestring, "CLS") == 0) {	model_test encoder_cpu_test	"pooling_mode": "cls" not recognised
EOF
)

list=0 only="" limit=600
while [ $# -gt 0 ]; do
  case $1 in
    --list) list=1 ;;
    --only) only=",$2,"; shift ;;
    --timeout) limit=$2; shift ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "mutate.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$list" = 1 ]; then
  printf '%s\n' "$mutations" | awk -F'\t' '{printf "%2s  %-26s %s\n", $1, $2, $6}'
  exit 0
fi

# Replaces the one line of $1 that holds $2 by the same line with $2 replaced by $3; fails
# when $2 is not there exactly once.
apply() {
  python3 - "$@" <<'PY'
import sys
path, old, new = sys.argv[1:4]
text = open(path, encoding="utf-8").read()
if text.count(old) != 1:
    sys.exit(f"{path}: '{old}' is there {text.count(old)} times, not once: the list is stale")
open(path, "w", encoding="utf-8").write(text.replace(old, new))
PY
}

build=build-mutate
launcher=""
command -v ccache >/dev/null && launcher="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
echo "mutate: configuring and building $build (no CUDA; GPU code on the emulation)"
cmake -S . -B "$build" -DDRE_CUDA=OFF -DDRE_CUDA_EMU=ON $launcher >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

backup=$(mktemp)
current=""
restore() { if [ -n "$current" ]; then cp "$backup" "$current"; current=""; fi; }
trap 'restore; rm -f "$backup"' EXIT
trap 'exit 130' INT TERM

killed=0 total=0
while IFS=$'\t' read -r id file old new tests what; do
  [ -z "$only" ] || [[ $only == *",$id,"* ]] || continue
  cp "$file" "$backup"
  current=$file
  apply "$file" "$old" "$new"
  targets="$tests dre_cli"
  [[ $tests == *emu_* ]] && targets="$targets dre_emu_cli"
  if ! cmake --build "$build" -j"$(nproc)" --target $targets >"$build/mutate-build.log" 2>&1; then
    restore
    echo "mutate: #$id ($file) does not compile: the list is stale ($build/mutate-build.log)" >&2
    exit 1
  fi
  regex="^($(echo "$tests" | tr ' ' '|'))(\\.|$)"
  start=$SECONDS
  if timeout "$limit" ctest --test-dir "$build" -R "$regex" -j"$(nproc)" --output-on-failure \
    >"$build/mutate-ctest.log" 2>&1; then
    verdict="SURVIVED"
  else
    # the failing ctest entries, and the GoogleTest cases that failed inside them
    failed=$(awk '/The following tests FAILED:/ {on = 1; next} on && /^\t/ {sub(/^\t *[0-9]+ - /, ""); sub(/ \(.*$/, ""); printf "%s%s", sep, $0; sep = ", "}' "$build/mutate-ctest.log")
    cases=$(grep -o '^\[  FAILED  \] [A-Za-z0-9_]*\.[A-Za-z0-9_/]*' "$build/mutate-ctest.log" | sort -u |
      sed 's/^\[  FAILED  \] //' | head -n 4 | paste -sd, - | sed 's/,/, /g' || true)
    verdict="killed by ${failed:-a time-out after ${limit} s}${cases:+ ($cases)}"
    killed=$((killed + 1))
  fi
  total=$((total + 1))
  restore
  printf '#%-2s %-26s %s — %s (%d s)\n' "$id" "$file" "$what" "$verdict" $((SECONDS - start))
done <<<"$mutations"
cmake --build "$build" -j"$(nproc)" >/dev/null # back to the code as it is
[ "$total" -gt 0 ] || { echo "mutate: no mutation selected" >&2; exit 2; }
awk -v k="$killed" -v t="$total" 'BEGIN { printf "mutate: %d of %d mutations killed: %.1f%%\n", k, t, 100 * k / t }'
