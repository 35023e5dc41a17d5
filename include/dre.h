/* dre.h — the public interface of dre, a dense retrieval engine.
 *
 * dre tokenizes text with a BERT WordPiece tokenizer (ids identical to Hugging Face's),
 * encodes it with a BERT-family transformer (CPU reference in fp32, or our own CUDA
 * kernels plus cuBLAS), and keeps pooled, L2-normalised embeddings in a FAISS index
 * with a SQLite docstore, which also holds a BM25 (FTS5) index of the texts; a searcher
 * answers queries by dense search, BM25, or both fused.
 *
 * In ten lines (errors unchecked for brevity; every call returns a dre_status):
 *
 *     dre_embed_options eo;
 *     dre_embed_options_init(&eo);
 *     dre_embed("models/all-MiniLM-L6-v2", "corpus.jsonl", "my-index", &eo, NULL);
 *     dre_searcher *s;
 *     dre_searcher_open("my-index", "models/all-MiniLM-L6-v2", DRE_DEVICE_AUTO, &s);
 *     const char *q = "a question";
 *     dre_hit hits[10];
 *     int32_t n;
 *     dre_search(s, &q, 1, NULL, hits, &n); // hits[i].row: see dre_index_doc
 *     dre_searcher_close(s);
 *
 * The header reads from the simple to the detailed: embedding a corpus, searching it, the
 * index and evaluation, the service; then the lower level (tokenizer, model, encoder,
 * corpus reader, exact GPU search) for callers who build their own pipeline.
 *
 * Conventions, as in sqlite3.h and FAISS's C API:
 *  - handles are opaque and made/freed in pairs: dre_x_open / dre_x_close;
 *  - every fallible call returns a dre_status; DRE_OK is 0;
 *  - on failure, dre_last_error() (per thread) gives the full message, naming the
 *    file, line or tensor that was wrong;
 *  - sizes are size_t, token counts int32_t, ids and row numbers int64_t;
 *  - a pointer a call returns (an info struct, a name, a string) belongs to dre: names of
 *    enum values and statuses are static; anything else stays valid while the handle it
 *    came from is open, unless its comment says otherwise (dre_last_error: until the
 *    thread's next failing call; a dre_corpus_doc: until the next dre_corpus_next).
 *    Strings dre gives the caller to free say so (dre_doc_clear).
 */
#ifndef DRE_H
#define DRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRE_VERSION_MAJOR 0
#define DRE_VERSION_MINOR 1
#define DRE_VERSION_PATCH 0
#define DRE_VERSION_STRING "0.1.0"

/* Marks the public functions: exported from a shared libdre built with hidden visibility
 * (everything else in it stays internal). */
#ifndef DRE_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define DRE_API __attribute__((visibility("default")))
#else
#define DRE_API
#endif
#endif

/* ---------------------------------------------------------------- errors */

typedef enum dre_status {
    DRE_OK = 0,
    DRE_ERR_INVALID_ARG, /* a caller passed something meaningless (NULL, k < 1, ...) */
    DRE_ERR_IO,          /* a file could not be opened, read, written or renamed */
    DRE_ERR_FORMAT,      /* an input file is malformed: JSON, safetensors, JSONL, TSV */
    DRE_ERR_UNSUPPORTED, /* valid input dre does not handle (an activation, a dtype) */
    DRE_ERR_NOMEM,       /* host allocation failed */
    DRE_ERR_NO_GPU,      /* a GPU was required and none is usable */
    DRE_ERR_CUDA,        /* a CUDA or cuBLAS call failed */
    DRE_ERR_INDEX,       /* FAISS or SQLite reported an error */
    DRE_ERR_MISMATCH,    /* model and index disagree (dim, weights hash) */
    DRE_ERR_LOCKED,      /* another process holds the index */
} dre_status;

/* A short, static description of a status code. */
DRE_API const char *dre_status_str(dre_status status);

/* The detailed message of the last failure on this thread ("" if none); valid until this
 * thread's next failing call. */
DRE_API const char *dre_last_error(void);

/* ---------------------------------------------------------------- devices, pooling, formats */

typedef enum dre_device {
    DRE_DEVICE_AUTO = 0, /* the GPU if one is usable, else the CPU */
    DRE_DEVICE_CPU = 1,  /* fp32 reference encoder, OpenBLAS */
    DRE_DEVICE_GPU = 2,  /* fp16 CUDA encoder; DRE_ERR_NO_GPU without a GPU */
} dre_device;

/* "auto", "cpu" or "gpu" to a device; returns DRE_ERR_INVALID_ARG otherwise. */
DRE_API dre_status dre_device_parse(const char *name, dre_device *out);
DRE_API const char *dre_device_name(dre_device device);
/* Number of usable CUDA devices (0 when built without a GPU or none present). */
DRE_API int dre_gpu_count(void);

/* The CPU encoder's arithmetic. FP32 (the default) gives sentence-transformers' embeddings;
 * BF16 rounds weights and activations to bf16 in the four matrix products of each layer,
 * summing in fp32 (attention, LayerNorm, GELU and pooling stay fp32): about twice the
 * products a second on CPUs with AVX-512 BF16, DRE_ERR_UNSUPPORTED on others. INT8 keeps
 * those products' weights as int8 with a scale per 64 weights of an output column
 * (symmetric, quantised once when the encoder is made), widened to bf16 as they are read,
 * activations rounded to bf16 as BF16's, sums in fp32: a quarter of fp32's weight bytes (and
 * an eighth more for the scales), the same CPUs as BF16 (AVX-512 BF16). Both stay within
 * cosine 0.999 of FP32 per text (all-MiniLM-L6-v2). The GPU encoder computes in fp16 with fp32 sums whatever this
 * says, and asking it for BF16 or INT8 is DRE_ERR_INVALID_ARG. */
typedef enum dre_precision {
    DRE_PRECISION_FP32 = 0,
    DRE_PRECISION_BF16 = 1,
    DRE_PRECISION_INT8 = 2
} dre_precision;
/* "fp32", "bf16" or "int8"; DRE_ERR_INVALID_ARG otherwise. */
DRE_API dre_status dre_precision_parse(const char *name, dre_precision *out);
DRE_API const char *dre_precision_name(dre_precision precision);
/* How the CPU encoder computes at `precision` on this CPU, one line in buf (truncated to
 * size): the instructions its products use and why, or why it cannot run there. DRE_OK when
 * it can run, DRE_ERR_UNSUPPORTED when not (the line says why), DRE_ERR_INVALID_ARG for an
 * unknown precision. What `dre info --cpu` prints. */
DRE_API dre_status dre_cpu_path(dre_precision precision, char *buf, size_t size);

typedef enum dre_pooling { DRE_POOL_MEAN = 0, DRE_POOL_CLS = 1 } dre_pooling;

/* Bytes a prompt may take, with its NUL. */
#define DRE_PROMPT_CAP 512

typedef enum dre_corpus_format {
    DRE_CORPUS_AUTO = 0, /* by extension: .jsonl/.json, .tsv, else lines */
    DRE_CORPUS_JSONL = 1,
    DRE_CORPUS_TSV = 2,   /* id <tab> text, or id <tab> title <tab> text; header optional */
    DRE_CORPUS_LINES = 3, /* one text per line; the id is the line number */
} dre_corpus_format;

/* How an index keeps its vectors for search (dre embed --quantize, meta.json "quantize"). A
 * quantized index searches small codes in RAM for the top k x rescore_factor candidates, then
 * rescores them exactly from full vectors memory-mapped beside it (never read into RAM). */
typedef enum dre_quantize {
    DRE_QUANTIZE_NONE = 0,   /* the FAISS index of the factory string (default "Flat") */
    DRE_QUANTIZE_INT8 = 1,   /* 8-bit codes, per-dimension ranges (FAISS "SQ8", the default
                                factory; "IVF4096,SQ8" or "HNSW32,SQ8" too); fp32 rescoring */
    DRE_QUANTIZE_BINARY = 2, /* sign bits in a FAISS binary index ("BFlat", the default;
                                "BHNSW32", "BIVF1024"): 32x smaller than fp32; int8 or fp32
                                rescoring */
} dre_quantize;

/* The vectors a quantized index rescores from: vectors.i8 (FAISS SQ8 codes, 1 byte a
 * dimension, decoded exactly as FAISS decodes them) or vectors.f32. */
typedef enum dre_rescore {
    DRE_RESCORE_NONE = 0, /* an unquantized index; as an option: the quantization's default */
    DRE_RESCORE_INT8 = 1, /* binary's default */
    DRE_RESCORE_FP32 = 2, /* int8's only kind */
} dre_rescore;

/* Candidates per result a quantized index rescores when nothing else says (meta.json's
 * "rescore_factor", a search's "rescore_factor" parameter). */
#define DRE_DEFAULT_RESCORE_FACTOR 4

/* "none"/"int8"/"binary" and "int8"/"fp32" to values (DRE_ERR_INVALID_ARG otherwise), and
 * back. */
DRE_API dre_status dre_quantize_parse(const char *name, dre_quantize *out);
DRE_API const char *dre_quantize_name(dre_quantize quantize);
DRE_API dre_status dre_rescore_parse(const char *name, dre_rescore *out);
DRE_API const char *dre_rescore_name(dre_rescore rescore);

/* ---------------------------------------------------------------- handles */

/* Opaque, each made by its _open and freed by its _close. */
typedef struct dre_searcher dre_searcher;     /* an index, its model and an encoder */
typedef struct dre_index dre_index;           /* an index folder, read-only */
typedef struct dre_server dre_server;         /* dre serve: HTTP over a searcher */
typedef struct dre_queries dre_queries;       /* a file of queries */
typedef struct dre_qrels dre_qrels;           /* relevance judgements */
typedef struct dre_tokenizer dre_tokenizer;   /* a model's WordPiece tokenizer */
typedef struct dre_model dre_model;           /* a model's weights */
typedef struct dre_encoder dre_encoder;       /* the model on the CPU or a GPU */
typedef struct dre_corpus dre_corpus;         /* a corpus file, read a document at a time */
typedef struct dre_gpu_search dre_gpu_search; /* vectors on the GPU for exact search */

/* ---------------------------------------------------------------- embed */

/* Where a running embed stands, as its progress callback sees it. */
typedef struct dre_embed_progress {
    int64_t n_docs;   /* documents added by this run so far */
    int64_t n_tokens; /* their tokens */
    int64_t offset;   /* corpus bytes read, up to the last document added */
    int64_t start;    /* the offset this run started from (> 0 when resumed) */
    int64_t size;     /* the corpus's size in bytes */
    double seconds;   /* since this run started */
    int done;         /* the last call: the corpus is read (or the run failed) */
} dre_embed_progress;

/* Called after each window of documents is written, and once more with done set; from a
 * thread of dre_embed's, never two calls at once. */
typedef void (*dre_embed_progress_fn)(const dre_embed_progress *progress, void *user);

typedef struct dre_embed_options {
    const char *factory; /* FAISS index_factory string; NULL: "Flat" (inner product) */
    dre_device device;
    dre_precision precision; /* the CPU encoder's (default fp32) */
    int32_t budget_tokens; /* <= 0: encoder default */
    int n_threads;         /* tokenizer threads; <= 0: all cores */
    int resume;            /* continue an interrupted run from its checkpoint */
    int append;            /* add to an existing index */
    int no_bm25;           /* no BM25 table (default: one, built as documents come) */
    /* Text put before each document, and recorded for queries (dre_search puts it before
     * each query); NULL: the model's (dre_model_info), "": none. */
    const char *doc_prompt;
    const char *query_prompt;
    /* > 0: a document longer than chunk_tokens tokens (with [CLS], [SEP] and the prompt) is
     * cut at wordpiece boundaries into windows of that many, consecutive windows sharing
     * chunk_overlap tokens (< 0: chunk_tokens / 4), each embedded as a vector of its own
     * that maps back to the document; 0: a vector per document, cut at the max length. */
    int32_t chunk_tokens;
    int32_t chunk_overlap;
    dre_embed_progress_fn progress; /* NULL: none */
    void *progress_user;            /* passed to progress */
    int skip_bad_lines;             /* --on-error skip; default: fail at the first */
    const char *errors_path;        /* if set, bad lines are listed there */
    dre_corpus_format format;
    const char *id_field; /* JSONL field names; NULL: "_id", "title", "text" */
    const char *title_field;
    const char *text_field;
    int64_t checkpoint_every; /* documents between checkpoints; <= 0: 10000 */
    dre_quantize quantize;    /* default DRE_QUANTIZE_NONE */
    dre_rescore rescore;      /* DRE_RESCORE_NONE: the quantization's default */
    int32_t rescore_factor;   /* recorded for searches; <= 0: DRE_DEFAULT_RESCORE_FACTOR */
} dre_embed_options;

/* Fills defaults: "Flat", auto device, all cores, fail on bad lines, JSONL fields. */
DRE_API void dre_embed_options_init(dre_embed_options *opts);

typedef struct dre_embed_summary {
    int64_t n_docs;    /* added by this run */
    int64_t n_skipped; /* bad lines skipped */
    int64_t n_tokens;
    int64_t n_total; /* documents in the index afterwards */
    double seconds;
    int64_t n_vectors;    /* vectors added (= n_docs unless chunked) */
    int64_t n_truncated;  /* documents cut at the model's max length (not chunked) */
    int32_t max_length;   /* that length, in tokens */
    dre_device device;    /* the encoder's (CPU or GPU) */
    int already_finished; /* resume found the index finished: nothing was done */
} dre_embed_summary;

/* Streams a corpus through tokenizer, encoder and index into index_dir (created if
 * needed): index.faiss, docs.sqlite, meta.json. Writes go to temporary names renamed
 * into place; an interrupted run resumes with opts->resume. Prints nothing: progress
 * goes to opts->progress, the outcome to summary. */
DRE_API dre_status dre_embed(const char *model_dir, const char *corpus_path, const char *index_dir,
                             const dre_embed_options *opts, dre_embed_summary *summary);

/* An index from vectors made elsewhere (dre index import): a .npy matrix, row i the vector of
 * the i-th document of a corpus file. */
typedef struct dre_import_options {
    /* The model the vectors came from, which the user vouches for: its dim is checked, its
     * name, weights hash, pooling and prompts recorded, so dre search embeds queries with it.
     * NULL: none, the index's model is model_name with no weights hash, and it is searched
     * with query vectors (dre_searcher_open refuses it). */
    const char *model_dir;
    const char *model_name; /* recorded without model_dir; NULL: "unknown" */
    const char *factory;    /* NULL: the quantization's default */
    dre_quantize quantize;
    dre_rescore rescore;
    int32_t rescore_factor;
    int no_bm25;
    dre_corpus_format format; /* of the documents; fields as dre_embed_options' */
    const char *id_field;
    const char *title_field;
    const char *text_field;
} dre_import_options;

DRE_API void dre_import_options_init(dre_import_options *opts);

/* Builds a new index in index_dir (created if needed; it must hold no index) from the
 * float32 or float16 .npy matrix at vectors_path and the documents of docs_path, one row per
 * document in order: their counts must agree, and ids must be unique. The writes are an
 * embed's (index/writer), so a failed import leaves no half index. summary: n_docs,
 * n_vectors, n_total and seconds. */
DRE_API dre_status dre_index_import(const char *vectors_path, const char *docs_path,
                                    const char *index_dir, const dre_import_options *opts,
                                    dre_embed_summary *summary);

/* A float32 or float16 .npy matrix (rows, dim), C order, read whole into *out as floats
 * (malloc'd: free it); errors name the file and what is wrong with it. */
DRE_API dre_status dre_vectors_read_npy(const char *path, float **out, int64_t *rows,
                                        int32_t *dim);

/* ---------------------------------------------------------------- searcher */

/* A FAISS search parameter by its faiss::ParameterSpace name: "nprobe" for IVF (default
 * 1), "efSearch" for HNSW (default 16), "max_codes", "ht" (polysemous PQ), "k_factor_rf"
 * (a refine index), "quantizer_efSearch" (IVF over an HNSW quantizer)... */
#define DRE_SEARCH_MAX_PARAMS 8
typedef struct dre_search_param {
    char name[32];
    double value; /* finite, >= 0 (nprobe, efSearch, k_factor: >= 1) */
} dre_search_param;

/* How queries are answered. */
typedef enum dre_search_mode {
    DRE_SEARCH_AUTO = 0,   /* hybrid when the index has a BM25 table, else dense */
    DRE_SEARCH_DENSE = 1,  /* nearest vectors to the query's embedding (inner product) */
    DRE_SEARCH_BM25 = 2,   /* BM25 over title and text (dre_index_bm25_search) */
    DRE_SEARCH_HYBRID = 3, /* the top depth of each, fused */
} dre_search_mode;

/* How hybrid search fuses the dense and the BM25 lists (each its top depth documents).
 * Convex is the default: on SciFact's train split (README) it gave nDCG@10 0.735 to RRF's
 * 0.716. */
typedef enum dre_fusion {
    DRE_FUSION_CONVEX = 0, /* alpha * dense + (1 - alpha) * bm25, each score min-max
                              normalised over its list (1 when a list's scores are all
                              equal), 0 for a list the document is not in */
    DRE_FUSION_RRF = 1,    /* reciprocal rank: sum over the lists of 1 / (rrf_k + rank) */
} dre_fusion;

/* "auto"/"dense"/"bm25"/"hybrid" and "rrf"/"convex" to values (DRE_ERR_INVALID_ARG
 * otherwise), and back. */
DRE_API dre_status dre_search_mode_parse(const char *name, dre_search_mode *out);
DRE_API const char *dre_search_mode_name(dre_search_mode mode);
DRE_API dre_status dre_fusion_parse(const char *name, dre_fusion *out);
DRE_API const char *dre_fusion_name(dre_fusion fusion);

/* How a searcher on the GPU searches a Flat index (exact inner product): its vectors are
 * uploaded to the GPU at its first dense search, as fp16 (the default: half the memory and
 * bandwidth, candidates re-scored in fp32 on the GPU from the index's own fp32 vectors in
 * host memory, so ids, order and scores are the fp32 search's) or as fp32; or not at all
 * (FAISS on the CPU, as for every other index kind and every CPU searcher). Answers agree
 * with FAISS Flat's, up to the order of near-ties that fp32 rounding cannot tell apart. */
typedef enum dre_search_precision {
    DRE_SEARCH_GPU_FP16,
    DRE_SEARCH_GPU_FP32,
    DRE_SEARCH_FAISS_CPU
} dre_search_precision;
/* "fp16", "fp32" or "faiss" */
DRE_API dre_status dre_search_precision_parse(const char *name, dre_search_precision *out);
DRE_API const char *dre_search_precision_name(dre_search_precision precision);

typedef struct dre_search_options {
    dre_search_mode mode;
    dre_fusion fusion;
    int32_t k;     /* results per query (default 10) */
    int32_t depth; /* hybrid: documents taken from each list (default 100; at least k) */
    double rrf_k;  /* DRE_FUSION_RRF's k (default 60) */
    double alpha;  /* DRE_FUSION_CONVEX's weight of the dense score, 0..1 (default 0.5) */
    const char *query_prompt;       /* put before each query; NULL: the index's (meta.json) */
    dre_search_precision precision; /* a GPU searcher's dense search (default GPU fp16); the
                                       first dense search fixes it for the searcher */
    /* FAISS search parameters for these queries alone (dre_index_search_with): a searcher's
     * later calls, and other callers of a shared searcher, never see them. */
    int32_t n_params;
    dre_search_param params[DRE_SEARCH_MAX_PARAMS];
} dre_search_options;

/* Fills the defaults: auto mode, convex fusion (alpha 0.5; RRF's k 60), 10 results, depth
 * 100. */
DRE_API void dre_search_options_init(dre_search_options *opts);

/* One result: a document, with what each retriever said of it. */
typedef struct dre_hit {
    int64_t row;        /* the document's docstore row (dre_index_doc) */
    double score;       /* the mode's: inner product, BM25, or fused */
    int32_t dense_rank; /* 1-based rank in the dense list; 0: not in it */
    float dense_score;  /* inner product (when dense_rank > 0) */
    int32_t bm25_rank;  /* 1-based rank in the BM25 list; 0: not in it */
    double bm25_score;  /* (when bm25_rank > 0) */
    int32_t chunk;      /* the chunk that gave dense_score (0 unless chunked); -1 when
                           dense_rank is 0 */
} dre_hit;

/* Opens an index with the model it was embedded with (its weights hash and dimension are
 * checked: DRE_ERR_MISMATCH otherwise) and an encoder on device. dre_search may be called
 * from any number of threads at once (the calls take turns); the dre_index it holds is,
 * like any dre_index, for one thread at a time. */
DRE_API dre_status dre_searcher_open(const char *index_dir, const char *model_dir,
                                     dre_device device, dre_searcher **out);
/* The same, with the CPU encoder's precision (dre_searcher_open: fp32). */
DRE_API dre_status dre_searcher_open_with(const char *index_dir, const char *model_dir,
                                          dre_device device, dre_precision precision,
                                          dre_searcher **out);
DRE_API void dre_searcher_close(dre_searcher *s);
/* The searcher's index, for its info and documents: the searcher's own, valid until
 * dre_searcher_close (never close it yourself). FAISS parameters for a search go in
 * dre_search_options.params; dre_index_set_param on a shared searcher's index would reach
 * every later search. */
DRE_API dre_index *dre_searcher_index(dre_searcher *s);
DRE_API dre_device dre_searcher_device(const dre_searcher *s);
/* the precision its encoder embeds queries at (--precision) */
DRE_API dre_precision dre_searcher_precision(const dre_searcher *s);
/* Whether dense search runs on the GPU (known after the first dense search). */
DRE_API int dre_searcher_gpu_search(const dre_searcher *s);

/* Embeds n texts (NUL-terminated UTF-8; prompt put before each, NULL for none) with the
 * searcher's model and encoder: n x dim floats into out, as the index's vectors were made;
 * text_tokens (if given, n of them) each text's tokens, [CLS] and [SEP] included. Texts
 * longer than the model's max length are cut, as sentence-transformers cuts them.
 * Thread-safe (calls take turns with dre_search). */
DRE_API dre_status dre_searcher_embed(dre_searcher *s, const char *const *texts, size_t n,
                                      const char *prompt, float *out, int32_t *text_tokens);
/* Embeds n sequences of token ids made already (dre_tokenize's: [CLS] ... [SEP], each of
 * 1..dre_searcher_max_length ids): sequence i is ids[cu_seqlens[i] .. cu_seqlens[i + 1]).
 * Packed and encoded as dre_searcher_embed packs and encodes texts, so the same ids give the
 * same vectors bit for bit. normalize 0: pooled but not normalised (dre_encoder_set_raw_pooling).
 * Thread-safe, as dre_searcher_embed. */
DRE_API dre_status dre_searcher_embed_ids(dre_searcher *s, const int32_t *ids,
                                          const int32_t *cu_seqlens, size_t n, int normalize,
                                          float *out);
/* The searcher's tokenizer (read-only, any thread may tokenize with it; closed with the
 * searcher), and the tokens per text it embeds, [CLS] and [SEP] included. */
DRE_API const dre_tokenizer *dre_searcher_tokenizer(const dre_searcher *s);
DRE_API int32_t dre_searcher_max_length(const dre_searcher *s);
/* The query prompt dre_search puts before each query by default (meta.json's; "" none). */
DRE_API const char *dre_searcher_query_prompt(const dre_searcher *s);

/* Answers n queries (NUL-terminated UTF-8). hits receives n x opts->k entries, query i's
 * best first from hits[i * k]; n_hits[i] how many it got (fewer than k when the index
 * holds fewer documents, or BM25 matches fewer). opts NULL: the defaults.
 * DRE_ERR_UNSUPPORTED for BM25 or hybrid on an index without a BM25 table. */
DRE_API dre_status dre_search(dre_searcher *s, const char *const *queries, size_t n,
                              const dre_search_options *opts, dre_hit *hits, int32_t *n_hits);
/* dre_search with the queries already embedded (n x dim, as dre_searcher_embed makes them
 * with the query prompt): the texts still serve BM25. For callers that embed many
 * requests' queries in one batch (dre serve). */
DRE_API dre_status dre_search_embedded(dre_searcher *s, const char *const *queries,
                                       const float *vectors, size_t n,
                                       const dre_search_options *opts, dre_hit *hits,
                                       int32_t *n_hits);

/* ---------------------------------------------------------------- index */

typedef struct dre_index_info {
    int32_t format_version;
    char model_name[128];
    char weights_sha256[65];
    int32_t dim;
    dre_pooling pooling;
    int normalize;
    int32_t max_length;
    int64_t count;     /* documents */
    int64_t n_vectors; /* vectors in index.faiss: count, or the chunks when chunked */
    char factory[128];
    int bm25;                          /* docs.sqlite has a BM25 table (dre_index_bm25_search) */
    char doc_prompt[DRE_PROMPT_CAP];   /* put before each document when it was embedded */
    char query_prompt[DRE_PROMPT_CAP]; /* to put before each query (dre_search does) */
    int32_t chunk_tokens;              /* documents cut into chunks of this many tokens; 0: not */
    int32_t chunk_overlap;             /* tokens consecutive chunks share */
    dre_quantize quantize;             /* what index.faiss holds */
    dre_rescore rescore;               /* what its candidates are rescored from */
    int32_t rescore_factor;            /* candidates per result searched by default */
    int32_t n_shards;                  /* 0: one index folder; else a sharded index's shards */
    char doc_precision[16];            /* what embedded the documents: "fp32", "bf16", "int8"
                                          (the CPU encoder's --precision), "fp16" (the GPU's),
                                          "mixed" (an --append at another); "" when unrecorded
                                          (older indexes, imports) */
} dre_index_info;

/* Opens an index folder read-only; checks that meta.json, index.faiss and
 * docs.sqlite agree. A sharded index (a folder of shard-00000, shard-00001, ... index folders
 * and a manifest, meta.json of format_version 4, written last: dre_embed_sharded) opens the
 * same way: every shard is opened and checked against the manifest, and every dre_index_*
 * call answers as the one index of all the shards' documents in order would (rows global,
 * results merged; BM25 with the statistics of all shards together), but its info's
 * n_shards. A folder with shards and no manifest is not opened. */
DRE_API dre_status dre_index_open(const char *index_dir, dre_index **out);
DRE_API void dre_index_close(dre_index *index);
/* count and n_vectors of a sharded index are its shards' sums; format_version is 4. */
DRE_API const dre_index_info *dre_index_get_info(const dre_index *index);
/* Shard i (0 .. n_shards - 1) of a sharded index: its own info (rows local to it), and (when
 * not NULL) its folder and the global rows of its first document and first vector. NULL for
 * an ordinary index or an i out of range. */
DRE_API const dre_index_info *dre_index_shard_info(const dre_index *index, int32_t i,
                                                   const char **dir, int64_t *first_row,
                                                   int64_t *first_vector);

/* k nearest vectors by inner product for n query vectors (n x dim): scores and vector
 * rows are n x k; rows are -1 where the index has fewer than k entries. A vector row is the
 * document's docstore row, unless the index is chunked (dre_index_chunk maps it). */
DRE_API dre_status dre_index_search(dre_index *index, const float *queries, int64_t n, int32_t k,
                                    float *scores, int64_t *rows);

/* dre_index_search with parameters for this one call: they are set, the search runs, and
 * the values the index had are put back before it returns, so no later search sees them.
 * DRE_ERR_INVALID_ARG naming the parameter if the index has no such search parameter or
 * the value is out of range (then nothing is searched and nothing changed). */
DRE_API dre_status dre_index_search_with(dre_index *index, const float *queries, int64_t n,
                                         int32_t k, const dre_search_param *params,
                                         int32_t n_params, float *scores, int64_t *rows);

/* Sets a FAISS search parameter (names as above) for every later search of this handle:
 * the index's own default. Per-call values go through dre_index_search_with or
 * dre_search_options.params. DRE_ERR_INVALID_ARG if the index has no such parameter. */
DRE_API dre_status dre_index_set_param(dre_index *index, const char *name, double value);

typedef struct dre_doc {
    int64_t row;
    char *id; /* external id */
    char *title;
    char *text;
} dre_doc;

/* Looks up a docstore row; free the strings with dre_doc_clear. */
DRE_API dre_status dre_index_doc(dre_index *index, int64_t row, dre_doc *doc);
DRE_API void dre_doc_clear(dre_doc *doc);

/* Reconstructs the stored vectors of rows [first, first + n) into out (n x dim); rows of
 * 0 .. n_vectors - 1. */
DRE_API dre_status dre_index_vectors(dre_index *index, int64_t first, int64_t n, float *out);

/* The document a vector row belongs to, and which of its chunks it is (0 when the index is
 * not chunked: the row is the document's). */
DRE_API dre_status dre_index_chunk(const dre_index *index, int64_t vector_row, int64_t *doc_row,
                                   int32_t *chunk);

/* The k best documents for a query by BM25 over title and text (SQLite FTS5, porter
 * stemming; every term of the query OR-ed, operators and quotes in it mean nothing): rows
 * and scores (higher is better), best first, ties by row. *n receives how many matched
 * (at most k). DRE_ERR_UNSUPPORTED if the index has no BM25 table. */
DRE_API dre_status dre_index_bm25_search(dre_index *index, const char *query, int32_t k,
                                         double *scores, int64_t *rows, int32_t *n);

/* Folds a sharded index (mpirun dre embed) into one ordinary index folder out_dir (created
 * if needed; it must hold no index), as one process would have written it: IVF shards, which
 * share one trained quantizer, list by list; Flat shards vector by vector; documents and BM25
 * alike. DRE_ERR_UNSUPPORTED for other kinds (search the sharded folder as it is). */
DRE_API dre_status dre_index_merge(const char *sharded_dir, const char *out_dir);

/* Adds a BM25 table to an index folder made without one (dre embed --no-bm25, or an older
 * dre): docs.sqlite is copied, indexed and renamed into place, then meta.json updated.
 * Takes the folder's lock; a no-op if the index has one already. */
DRE_API dre_status dre_index_add_bm25(const char *index_dir);

/* ---------------------------------------------------------------- evaluation */

/* Reads queries: BEIR JSONL ({"_id": ..., "text": ...}), TSV (id <tab> text), or plain
 * lines (id = line number). Errors name the file and line. */
DRE_API dre_status dre_queries_open(const char *path, dre_queries **out);
DRE_API void dre_queries_close(dre_queries *queries);
DRE_API size_t dre_queries_count(const dre_queries *queries);
DRE_API const char *dre_queries_id(const dre_queries *queries, size_t i);
DRE_API const char *dre_queries_text(const dre_queries *queries, size_t i);

/* Reads BEIR qrels (TSV: query-id, corpus-id, score; a header line is skipped).
 * Lines of four fields are read as TREC qrels (query-id, iteration, doc-id, score).
 * Scores are integers; a repeated (query, doc) pair keeps the later line, as BEIR's
 * loader does. */
DRE_API dre_status dre_qrels_open(const char *path, dre_qrels **out);
DRE_API void dre_qrels_close(dre_qrels *qrels);
DRE_API size_t dre_qrels_count(const dre_qrels *qrels); /* queries with judgements */
DRE_API int dre_qrels_has_query(const dre_qrels *qrels, const char *query_id);

typedef struct dre_metrics {
    double ndcg_10;
    double recall_10;
    double recall_100;
    double mrr_10;
    int64_t n_queries; /* queries with judgements that were scored */
} dre_metrics;

/* Scores one query's ranked list of external doc ids (best first, n entries).
 * Returns DRE_ERR_INVALID_ARG if the query has no judgements. Semantics are
 * trec_eval's (pytrec_eval, as BEIR uses it): the list is re-sorted by score, as a
 * float, descending, ties by doc id descending (strcmp); scores NULL keeps the given
 * order. nDCG@10 has gain = grade and 1/log2(rank+1) discount, ideal from all judged
 * docs of the query; recall and MRR count grade >= 1 as relevant; MRR@10 is the
 * reciprocal rank of the first relevant doc in the top 10, else 0. out->n_queries = 1;
 * a mean over queries is the mean of these values. */
DRE_API dre_status dre_eval_query(const dre_qrels *qrels, const char *query_id,
                                  const char *const *doc_ids, const double *scores, int32_t n,
                                  dre_metrics *out);

/* ---------------------------------------------------------------- service */

/* dre serve: an HTTP service over a searcher (libmicrohttpd). POST /v1/embeddings (OpenAI's
 * embeddings API), POST /search, GET /health, /info, /metrics (Prometheus text). Concurrent
 * requests' texts are embedded together, one encoder batch up to a token budget or a short
 * wait. With an API key, every endpoint but /health wants "Authorization: Bearer KEY". */
typedef void (*dre_log_fn)(void *ctx, const char *line);

typedef struct dre_server_options {
    const char *host;         /* address to listen on (default "127.0.0.1") */
    int port;                 /* default 8080; 0: a free port (dre_server_port says which) */
    const char *api_key;      /* NULL or "": no authentication */
    const char *model_name;   /* returned as "model" (default: the index's model name) */
    int32_t max_batch_tokens; /* tokens of one encoder batch of requests (default 16384) */
    int32_t max_wait_ms;      /* how long a batch waits for more requests (default 2) */
    int32_t max_inputs;       /* texts in one request (default 2048; more: 422) */
    size_t max_body_bytes;    /* request body (default 8 MiB; more: 413) */
    int threads;              /* HTTP threads (default: the cores, at least 2) */
    int32_t max_queue;        /* requests waiting to be batched before 503 (default 1024) */
    dre_log_fn log;           /* one line per request (NULL: none) */
    void *log_ctx;
    /* Against clients that hold connections: a connection past a cap is closed as it is
     * accepted (never left waiting in the listen queue), one past a deadline shut down. */
    int32_t max_connections;            /* open at once (default: the file-descriptor limit
                                           when the options are made, less 256, at most
                                           65536; 0 is that too) */
    int32_t max_connections_per_client; /* open at once from one address (default 256;
                                           0: no cap; behind a proxy, all share its one) */
    int32_t request_timeout_ms;         /* from accept to a request's headers and body in whole
                                           (default 10000); none while it is computed */
    int32_t idle_timeout_ms;            /* a kept-alive connection's, from an answer to the next
                                           request in whole (default 15000) */
} dre_server_options;

DRE_API void dre_server_options_init(dre_server_options *opts);
/* Starts serving s (which must outlive the server; nothing else may use it meanwhile). */
DRE_API dre_status dre_server_open(dre_searcher *s, const dre_server_options *opts,
                                   dre_server **out);
/* The port it listens on. */
DRE_API int dre_server_port(const dre_server *srv);
/* Stops accepting connections, finishes the requests in flight (waiting at most
 * timeout_ms), then closes. */
DRE_API void dre_server_close(dre_server *srv, int32_t timeout_ms);

/* ---------------------------------------------------------------- many processes (MPI)
 * libdre_dist, over Open MPI: `mpirun -np N dre ...` runs one process (rank) per GPU or per
 * share of the cores, each on its own part of the work (dre hands itself to dre-mpi, the same
 * tool linked with MPI; dre alone never loads MPI). The calls marked collective must be made
 * by every rank. */

/* 1 if mpirun (or another MPI launcher) started this process: its environment says so. */
DRE_API int dre_dist_launched(void);
/* 1 in a program linked with libdre_dist (dre-mpi), 0 in one without MPI (dre), whose other
 * dre_dist calls are those of one process (rank 0 of 1; the collective ones refuse). */
DRE_API int dre_dist_available(void);
/* Initialises MPI (threads: one at a time) and, for this rank, picks its GPU (local rank
 * modulo the node's GPUs, through CUDA_VISIBLE_DEVICES, before CUDA starts) and its share
 * of the node's cores (OpenMP threads, unless OMP_NUM_THREADS is set). Collective. */
DRE_API dre_status dre_dist_init(int *argc, char ***argv);
DRE_API int dre_dist_rank(void); /* 0 without MPI */
DRE_API int dre_dist_size(void); /* 1 without MPI */
/* This rank's share of the node's cores (all of them without MPI). */
DRE_API int dre_dist_threads(void);
/* Whether the error just returned by a collective call is the same on every rank (rank 0
 * reports it) or this rank's own (this rank reports it, then stops the job with
 * dre_dist_abort). */
DRE_API int dre_dist_error_shared(void);
/* Stops every rank of the job: after a rank's own failure. */
DRE_API void dre_dist_abort(int code);
DRE_API void dre_dist_finalize(void);

/* dre_embed across the ranks (collective): the corpus is cut into N line-aligned byte ranges
 * of near-equal size, rank r embeds range r into index_dir/shard-0000r (its own staging and
 * checkpoints: opts->resume continues each rank where it stopped), and rank 0 writes the
 * sharded index's manifest (index_dir/meta.json) once every rank has finished and no id is
 * in two shards. An index that needs training (IVF, PQ...) is trained once, by rank 0, on
 * the same vectors a one-process embed trains on (the corpus's first ones), and shared by
 * every shard. summary (rank 0: the whole job's; other ranks: their own) as dre_embed's. */
DRE_API dre_status dre_embed_sharded(const char *model_dir, const char *corpus_path,
                                     const char *index_dir, const dre_embed_options *opts,
                                     dre_embed_summary *summary);

/* dre serve across the ranks (collective; index_dir a sharded index): each rank opens its run
 * of the shards. On rank 0, *out is a searcher (the model and encoder are rank 0's) whose
 * searches ask the other ranks for their shards, answers equal to one process's. On every
 * other rank the call answers rank 0's requests and returns (*out NULL) once rank 0 calls
 * dre_dist_searcher_close, which closes the searcher and releases the ranks. */
DRE_API dre_status dre_dist_searcher_open(const char *index_dir, const char *model_dir,
                                          dre_device device, dre_precision precision,
                                          dre_searcher **out);
DRE_API void dre_dist_searcher_close(dre_searcher *s);

/* ================================================================ the lower level
 * The pieces the calls above are made of, for callers who tokenize, encode or search on
 * their own. */

/* ---------------------------------------------------------------- tokenizer */

/* Opens the WordPiece tokenizer of a Hugging Face model folder: vocab.txt and
 * tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars);
 * max length from sentence_bert_config.json's max_seq_length, else the smaller of
 * tokenizer_config.json's model_max_length and config.json's max_position_embeddings
 * (as sentence-transformers does). The handle is read-only after open: any number of
 * threads may call dre_tokenize on it at once. */
DRE_API dre_status dre_tokenizer_open(const char *model_dir, dre_tokenizer **out);
DRE_API void dre_tokenizer_close(dre_tokenizer *tok);

DRE_API int32_t dre_tokenizer_max_length(const dre_tokenizer *tok); /* with [CLS] and [SEP] */
DRE_API int32_t dre_tokenizer_vocab_size(const dre_tokenizer *tok);
/* The vocabulary entry of an id, or NULL if out of range. */
DRE_API const char *dre_tokenizer_token(const dre_tokenizer *tok, int32_t id);

/* Tokenizes len bytes of UTF-8 text to ids: [CLS] wordpieces [SEP], truncated to
 * max_length ids (max_length <= 0: the tokenizer's own). ids must hold max_length
 * entries (dre_tokenizer_max_length() when max_length <= 0); *n_ids receives the count.
 * Invalid UTF-8 is never an error: each byte that does not start a valid sequence
 * becomes U+FFFD, which BERT's normaliser removes like NUL and other control
 * characters, so such bytes are dropped. As in Hugging Face, special tokens spelled
 * out in the text ("[SEP]", "[MASK]", ...) become their ids. */
DRE_API dre_status dre_tokenize(const dre_tokenizer *tok, const char *text, size_t len,
                                int32_t max_length, int32_t *ids, int32_t *n_ids);

/* ---------------------------------------------------------------- model */

typedef struct dre_model_info {
    char name[128];        /* folder name, or config's _name_or_path */
    int32_t n_layers;      /* num_hidden_layers */
    int32_t hidden;        /* hidden_size */
    int32_t n_heads;       /* num_attention_heads */
    int32_t head_dim;      /* hidden / n_heads */
    int32_t intermediate;  /* intermediate_size */
    int32_t max_positions; /* max_position_embeddings */
    int32_t vocab_size;
    int32_t type_vocab_size;
    float layer_norm_eps;
    dre_pooling pooling;     /* 1_Pooling/config.json; mean if absent */
    int normalize;           /* a sentence_transformers Normalize module is listed */
    int32_t max_length;      /* tokens per text, with [CLS]/[SEP] */
    char weights_sha256[65]; /* hex digest of model.safetensors */
    /* Text put before queries and before documents: config_sentence_transformers.json's
     * prompts named "query" and "document", as sentence-transformers' encode_query and
     * encode_document apply them; "" where there is none. */
    char query_prompt[DRE_PROMPT_CAP];
    char doc_prompt[DRE_PROMPT_CAP];
} dre_model_info;

/* Loads a Hugging Face BERT folder: config.json, model.safetensors (f32, f16 or bf16;
 * tensor names with or without the "bert." prefix), and the sentence-transformers
 * files modules.json, 1_Pooling/config.json, sentence_bert_config.json when present.
 * Errors name the file and tensor. */
DRE_API dre_status dre_model_open(const char *model_dir, dre_model **out);
DRE_API void dre_model_close(dre_model *model);
DRE_API const dre_model_info *dre_model_get_info(const dre_model *model);

/* ---------------------------------------------------------------- encoder */

/* budget_tokens bounds the tokens of one packed batch (<= 0: a default of 16384);
 * the encoder's buffers are sized from it once. The model must outlive the encoder. */
DRE_API dre_status dre_encoder_open(const dre_model *model, dre_device device,
                                    int32_t budget_tokens, dre_encoder **out);
/* The same, with the CPU encoder's precision (dre_encoder_open: fp32). */
DRE_API dre_status dre_encoder_open_with(const dre_model *model, dre_device device,
                                         int32_t budget_tokens, dre_precision precision,
                                         dre_encoder **out);
DRE_API void dre_encoder_close(dre_encoder *enc);
DRE_API dre_device dre_encoder_device(const dre_encoder *enc); /* CPU or GPU, never AUTO */
DRE_API dre_precision dre_encoder_precision(const dre_encoder *enc);
DRE_API int32_t dre_encoder_dim(const dre_encoder *enc);
DRE_API int32_t dre_encoder_budget_tokens(const dre_encoder *enc);
DRE_API int32_t dre_encoder_max_length(const dre_encoder *enc); /* tokens per text, the model's */

/* Encodes one packed batch without padding: n_seqs sequences whose ids lie back to
 * back in ids; sequence i is ids[cu_seqlens[i] .. cu_seqlens[i+1]), cu_seqlens[0] = 0,
 * each of length 1..max_length, cu_seqlens[n_seqs] <= budget_tokens.
 * out receives n_seqs x dim floats, pooled (and normalised if the model says so). */
DRE_API dre_status dre_encoder_encode(dre_encoder *enc, const int32_t *ids,
                                      const int32_t *cu_seqlens, int32_t n_seqs, float *out);

/* dre_encoder_encode in two halves, so that the GPU never waits for the host: submit
 * queues a batch (ids and cu_seqlens are copied before it returns; n_seqs >= 1) and
 * collect waits for the oldest queued batch and writes its *n_seqs x dim floats to out.
 * Up to DRE_ENCODER_DEPTH batches may be queued: submit batch n + 1, then collect batch
 * n, and the GPU computes n + 1 while the host stores n. (On the CPU, collect computes.)
 * After a failed submit or collect nothing stays queued. */
#define DRE_ENCODER_DEPTH 2
DRE_API dre_status dre_encoder_submit(dre_encoder *enc, const int32_t *ids,
                                      const int32_t *cu_seqlens, int32_t n_seqs);
DRE_API dre_status dre_encoder_collect(dre_encoder *enc, float *out, int32_t *n_seqs);
/* raw 1: the batches submitted from now on come out pooled but not L2-normalised, even
 * where the model normalises (TEI's "normalize": false); raw 0 (the default): as the
 * model says. Batches already queued keep what they were submitted with. */
DRE_API void dre_encoder_set_raw_pooling(dre_encoder *enc, int raw);

/* Tokenizes, length-sorts and packs n texts (NUL-terminated UTF-8) into batches,
 * encodes them and writes n x dim floats in the input order. Tokenizes on n_threads
 * threads (<= 0: all cores). */
DRE_API dre_status dre_encode_texts(dre_encoder *enc, const dre_tokenizer *tok,
                                    const char *const *texts, size_t n, int n_threads, float *out);

/* ---------------------------------------------------------------- corpus reader */

/* A streaming reader of a corpus file: one line in memory at a time; each bad line is an
 * error naming "file:line: what", the reader already past it, so the caller may skip it or
 * stop. */

/* One document. Its pointers stay valid until the next dre_corpus_next or dre_corpus_close. */
typedef struct dre_corpus_doc {
    const char *id;
    const char *title; /* NULL when the record has no title */
    const char *text;
    /* What dre embed embeds, as BEIR's SentenceBERT.encode_corpus builds it:
     * (title + " " + text).strip() when a title exists, else text.strip(). */
    const char *joined;
    size_t joined_len;
    int64_t line; /* 1-based line number in the file */
} dre_corpus_doc;

/* Opens path. format AUTO picks by extension (.jsonl/.json: JSONL, .tsv: TSV, anything else:
 * lines). The field names apply to JSONL; NULL means "_id", "title", "text". A missing file
 * or a folder is DRE_ERR_IO. */
DRE_API dre_status dre_corpus_open(const char *path, dre_corpus_format format, const char *id_field,
                                   const char *title_field, const char *text_field,
                                   dre_corpus **out);
DRE_API void dre_corpus_close(dre_corpus *corpus);
/* Reads the next document. DRE_OK and *got = 1: doc is filled; DRE_OK and *got = 0: the end.
 * DRE_ERR_FORMAT: the line was bad ("file:line: ..."), and calling again skips it;
 * DRE_ERR_IO / DRE_ERR_NOMEM: stop. JSONL and TSV skip blank lines; in the lines format a
 * blank line is an empty text (its line number is its id). */
DRE_API dre_status dre_corpus_next(dre_corpus *corpus, dre_corpus_doc *doc, int *got);

/* ---------------------------------------------------------------- exact GPU search */

/* Holds n x dim vectors on the GPU for exact inner-product search (cuBLAS scores and
 * our top-k kernel). DRE_ERR_NO_GPU without a GPU. */
DRE_API dre_status dre_gpu_search_open(const float *vectors, int64_t n, int32_t dim,
                                       dre_gpu_search **out);
/* The same with the vectors held as fp16: half the GPU memory and the bandwidth. The GPU
 * finds candidates by fp16 scores and re-scores them in fp32 from `vectors` themselves,
 * which stay in host memory, page-locked and mapped for the GPU (no copy is made; only the
 * candidates' rows are read), and must stay valid and unchanged until the handle is closed.
 * The answers are those of the fp32 search (FAISS's, scores to fp32 rounding): a query
 * whose candidates cannot prove it (near-duplicates at the k-th place) is searched again on
 * the GPU, exactly wherever an fp16 score comes within the error bound. */
DRE_API dre_status dre_gpu_search_open_fp16(const float *vectors, int64_t n, int32_t dim,
                                            dre_gpu_search **out);
DRE_API void dre_gpu_search_close(dre_gpu_search *gs);
/* The k (1..1024) best rows by inner product for each of n_queries queries (n_queries x
 * dim): scores and rows are n_queries x k, best first; rows are -1 (scores -inf) past
 * the n stored vectors. */
DRE_API dre_status dre_gpu_search_run(dre_gpu_search *gs, const float *queries, int64_t n_queries,
                                      int32_t k, float *scores, int64_t *rows);

#ifdef __cplusplus
}
#endif
#endif /* DRE_H */

/* ================================================================ the advanced tier
 * What dre's own benchmarks and tests reach for, as zstd's ZSTD_STATIC_LINKING_ONLY: define
 * DRE_STATIC_LINKING_ONLY before including dre.h. These calls may change between versions. */
#if defined(DRE_STATIC_LINKING_ONLY) && !defined(DRE_H_STATIC_LINKING_ONLY)
#define DRE_H_STATIC_LINKING_ONLY

#ifdef __cplusplus
extern "C" {
#endif

/* A model of a config.json's shapes (config_path: the file, or a folder holding it) with
 * random weights: matrices uniform with BERT's initialiser std 0.02, LayerNorm g = 1, b = 0,
 * small biases, drawn from seed by splitmix64. The config may add "max_seq_length",
 * "pooling" ("mean" or "cls") and "normalize" (true) as sentence-transformers' files would.
 * Close with dre_model_close. */
DRE_API dre_status dre_model_open_random(const char *config_path, uint64_t seed, dre_model **out);

/* Queries of an fp16 GPU search whose candidates could not settle the answer, so far: each
 * was searched again on the GPU (dre_gpu_search_open_fp16). 0 for fp32 and without a GPU. */
DRE_API int64_t dre_gpu_search_widened(const dre_gpu_search *gs);
/* Scores at most `rows` vectors a chunk (0: as many as keep a batch's scores in L2), so that a
 * test on the CUDA emulation chains many chunks over few vectors. */
DRE_API void dre_gpu_search_set_chunk_rows(dre_gpu_search *gs, int64_t rows);

/* The GPU encoder's operators, in their order within a forward pass. */
typedef enum dre_op {
    DRE_OP_EMBED,        /* embedding gather + LayerNorm */
    DRE_OP_QKV_GEMM,     /* [T,H] x [3H,H]^T */
    DRE_OP_ATTENTION,    /* fused varlen attention, QKV bias included */
    DRE_OP_OUT_GEMM,     /* [T,H] x [H,H]^T */
    DRE_OP_LN1,          /* bias + residual + LayerNorm */
    DRE_OP_FFN_IN_GEMM,  /* [T,H] x [I,H]^T */
    DRE_OP_GELU,         /* bias + GELU */
    DRE_OP_FFN_OUT_GEMM, /* [T,I] x [H,I]^T */
    DRE_OP_LN2,          /* bias + residual + LayerNorm */
    DRE_OP_POOL,         /* pooling + L2 normalisation */
    DRE_OP_COUNT
} dre_op;
DRE_API const char *dre_op_name(dre_op op);

/* Kernel families with more than one implementation, kept side by side (as llm.c's dev/cuda
 * versions) so one run on a GPU compares them: `dre bench encoder --variant` and the
 * DRE_VARIANT environment variable ("family=name[,family=name]", read when a GPU encoder is
 * opened) pick one per family; the first listed is the default. */
typedef enum dre_kernel_family {
    DRE_FAMILY_ATTENTION,
    DRE_FAMILY_GELU,
    DRE_FAMILY_COUNT
} dre_kernel_family;
DRE_API const char *dre_kernel_family_name(dre_kernel_family family);
/* The family's variants, default first, NULL-terminated. */
DRE_API const char *const *dre_kernel_family_variants(dre_kernel_family family);

/* Picks variants from a "family=name[,family=name]" list: DRE_ERR_INVALID_ARG naming the
 * choices for an unknown family or name, DRE_ERR_UNSUPPORTED on a CPU encoder. */
DRE_API dre_status dre_encoder_set_variants(dre_encoder *enc, const char *spec);
/* The variant a GPU encoder runs for a family; NULL on a CPU encoder. */
DRE_API const char *dre_encoder_variant(const dre_encoder *enc, dre_kernel_family family);
/* Runs one packed batch (as dre_encoder_encode, its output discarded) with CUDA events
 * between the operators: ms[op] receives each operator's GPU time in milliseconds, summed
 * over the layers. Nothing may be queued. DRE_ERR_UNSUPPORTED on a CPU encoder. */
DRE_API dre_status dre_encoder_profile(dre_encoder *enc, const int32_t *ids,
                                       const int32_t *cu_seqlens, int32_t n_seqs,
                                       double ms[DRE_OP_COUNT]);
/* Runs only the model's cuBLAS GEMMs (4 a layer) for n_tokens tokens (up to the budget),
 * reps times, on the encoder's buffers: *ms receives the mean milliseconds of one pass, the
 * roofline of a forward pass. DRE_ERR_UNSUPPORTED on a CPU encoder. */
DRE_API dre_status dre_encoder_gemm_only(dre_encoder *enc, int32_t n_tokens, int32_t reps,
                                         double *ms);

#ifdef __cplusplus
}
#endif
#endif /* DRE_STATIC_LINKING_ONLY */
