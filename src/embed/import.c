/* embed/import.c — dre_index_import: an index folder from vectors made elsewhere (a .npy
 * matrix) and the documents they belong to, written as an embed writes (index/writer.h) but
 * with no encoder: the corpus is read, the rows taken in windows, the index finished. No
 * checkpoints: a failed import leaves nothing behind, and is simply run again. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "common/fileio.h"
#include "index/checkpoint.h"
#include "index/index.h"
#include "index/npy.h"
#include "index/vindex.h"
#include "index/writer.h"
#include "text/corpus.h"

/* Documents (and vector rows) handed to the writer at a time. */
#define IMPORT_WINDOW 4096

void dre_import_options_init(dre_import_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->format = DRE_CORPUS_AUTO;
}

static const char *or_default(const char *value, const char *fallback) {
    return value ? value : fallback;
}

/* meta.json's model fields: the model's, or a name without weights. */
static dre_status describe_model(const dre_import_options *o, int32_t dim, dre_index_info *meta) {
    if (!o->model_dir) {
        snprintf(meta->model_name, sizeof meta->model_name, "%s",
                 or_default(o->model_name, "unknown"));
        meta->dim = dim;
        meta->pooling = DRE_POOL_MEAN;
        return DRE_OK;
    }
    dre_model *model = NULL;
    DRE_TRY(dre_model_open(o->model_dir, &model));
    const dre_model_info *m = dre_model_get_info(model);
    dre_status st = DRE_OK;
    if (m->hidden != dim)
        st = dre_set_error(DRE_ERR_MISMATCH,
                           "%s gives vectors of dim %d, but the model %s makes %d: not its vectors",
                           "the .npy file", dim, o->model_dir, m->hidden);
    snprintf(meta->model_name, sizeof meta->model_name, "%s",
             o->model_name ? o->model_name : m->name);
    snprintf(meta->weights_sha256, sizeof meta->weights_sha256, "%s", m->weights_sha256);
    meta->dim = m->hidden;
    meta->pooling = m->pooling;
    meta->normalize = m->normalize;
    meta->max_length = m->max_length;
    snprintf(meta->doc_prompt, sizeof meta->doc_prompt, "%s", m->doc_prompt);
    snprintf(meta->query_prompt, sizeof meta->query_prompt, "%s", m->query_prompt);
    dre_model_close(model);
    return st;
}

/* The checkpoint record the writer runs on: this import's settings. */
static dre_status import_settings(const dre_import_options *o, const dre_index_info *meta,
                                  dre_corpus *docs, checkpoint *c) {
    memset(c, 0, sizeof *c);
    DRE_TRY(dre_checkpoint_quantize(c, o->quantize, o->rescore, o->rescore_factor));
    DRE_TRY(dre_checkpoint_names(c,
                                 or_default(o->factory, dre_vindex_default_factory(c->quantize)),
                                 o->id_field, o->title_field, o->text_field));
    c->format = dre_corpus_format_of(docs);
    c->bm25 = !o->no_bm25;
    c->dim = meta->dim;
    snprintf(c->weights_sha256, sizeof c->weights_sha256, "%s", meta->weights_sha256);
    strcpy(c->doc_prompt, meta->doc_prompt);
    strcpy(c->query_prompt, meta->query_prompt);
    c->window_cap = IMPORT_WINDOW;
    c->every = IMPORT_WINDOW;
    c->errors_bytes = -1;
    return DRE_OK;
}

/* Hands the documents and their rows to the writer, a window at a time. */
static dre_status import_rows(index_writer *w, const npy_matrix *vectors, dre_corpus *docs,
                              const char *docs_path) {
    float *window = malloc((size_t)IMPORT_WINDOW * (size_t)vectors->cols * sizeof(float));
    if (!window) return dre_set_error(DRE_ERR_NOMEM, "import: out of memory");
    const index_chunk whole = {0, 0};
    dre_status st = DRE_OK;
    int64_t row = 0;
    int got = 1;
    while (st == DRE_OK && got) {
        int64_t n = 0;
        st = dre_index_writer_begin(w);
        while (st == DRE_OK && n < IMPORT_WINDOW) {
            dre_corpus_doc doc;
            st = dre_corpus_next(docs, &doc, &got);
            if (st != DRE_OK || !got) break;
            if (row + n >= vectors->rows) {
                st = dre_set_error(DRE_ERR_MISMATCH,
                                   "%s:%lld: a document past the %lld rows of %s: the documents "
                                   "and the vectors disagree",
                                   docs_path, (long long)doc.line, (long long)vectors->rows,
                                   vectors->path);
                break;
            }
            int64_t duplicate_of = -1;
            st = dre_index_writer_add_doc(w, doc.id, doc.title, doc.text, 1,
                                          &whole, &duplicate_of);
            if (st == DRE_OK && duplicate_of >= 0)
                st = dre_set_error(DRE_ERR_FORMAT,
                                   "%s:%lld: id \"%s\" again (row %lld has it): with vectors "
                                   "matched to documents by row, every id must be unique",
                                   docs_path, (long long)doc.line, doc.id,
                                   (long long)duplicate_of);
            n++;
        }
        if (st == DRE_OK) st = dre_npy_read(vectors, row, n, window);
        if (st == DRE_OK) st = dre_index_writer_commit(w, window, n);
        row += n;
    }
    free(window);
    if (st == DRE_OK && row != vectors->rows)
        st = dre_set_error(DRE_ERR_MISMATCH,
                           "%s holds %lld documents, %s %lld vectors: one row per document", docs_path,
                           (long long)row, vectors->path, (long long)vectors->rows);
    return st;
}

static dre_status import_locked(index_writer *w, const char *vectors_path, const char *docs_path,
                                const char *dir, const dre_import_options *o) {
    if (dre_file_exists_in(dir, INDEX_META_FILE) || dre_file_exists_in(dir, INDEX_CHECKPOINT_FILE))
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "%s already holds an index (or an unfinished embed); import into a "
                             "new folder",
                             dir);
    npy_matrix vectors;
    DRE_TRY(dre_npy_open(vectors_path, &vectors));
    dre_index_info meta = {0};
    dre_corpus *docs = NULL;
    checkpoint c;
    dre_status st = describe_model(o, vectors.cols, &meta);
    if (st == DRE_OK)
        st = dre_corpus_open(docs_path, o->format, o->id_field, o->title_field, o->text_field,
                             &docs);
    if (st == DRE_OK) st = import_settings(o, &meta, docs, &c);
    if (st == DRE_OK) st = dre_index_writer_start(w, &c);
    if (st == DRE_OK) st = dre_index_writer_resume(w, &c);
    if (st == DRE_OK) dre_index_writer_reserve(w, vectors.rows);
    if (st == DRE_OK) st = import_rows(w, &vectors, docs, docs_path);
    if (st == DRE_OK && vectors.rows == 0)
        st = dre_set_error(DRE_ERR_FORMAT, "%s: no vectors to import", vectors_path);
    if (st == DRE_OK) {
        snprintf(meta.factory, sizeof meta.factory, "%s", c.factory);
        meta.bm25 = c.bm25;
        meta.quantize = c.quantize;
        meta.rescore = c.rescore;
        meta.rescore_factor = c.rescore_factor;
        meta.format_version = c.quantize != DRE_QUANTIZE_NONE ? 3 : 1;
        st = dre_index_writer_finish(w, &meta);
    }
    dre_corpus_close(docs);
    dre_npy_close(&vectors);
    return st;
}

dre_status dre_index_import(const char *vectors_path, const char *docs_path,
                            const char *index_dir, const dre_import_options *opts,
                            dre_embed_summary *summary) {
    if (!vectors_path || !docs_path || !index_dir)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_import: NULL argument");
    dre_import_options defaults;
    if (!opts) {
        dre_import_options_init(&defaults);
        opts = &defaults;
    }
    if (summary) memset(summary, 0, sizeof *summary);
    if (mkdir(index_dir, 0755) != 0 && errno != EEXIST)
        return dre_set_error(DRE_ERR_IO, "%s: cannot create: %s", index_dir, strerror(errno));
    const double t0 = dre_now_seconds();
    index_writer *w = NULL;
    DRE_TRY(dre_index_writer_open(index_dir, &w));
    dre_status st = import_locked(w, vectors_path, docs_path, index_dir, opts);
    const int64_t count = dre_index_writer_count(w);
    dre_index_writer_close(w);
    if (st == DRE_OK && summary) {
        summary->n_docs = count;
        summary->n_vectors = count;
        summary->n_total = count;
        summary->seconds = dre_now_seconds() - t0;
        summary->device = DRE_DEVICE_CPU;
    }
    return st;
}
