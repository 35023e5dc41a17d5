/* index/writer.c — writes an index folder: staging files beside the finished ones,
 * checkpoints, and the renames that finish it (see index/writer.h).
 *
 * Vectors are staged in embed-vectors.f32 (row-major floats, this run's rows only) and
 * documents in embed-docs.sqlite; the FAISS index lives in memory and is rebuilt from the
 * staged vectors on resume. Indexes that need training (IVF, PQ...) are trained on the
 * first train_size staged vectors (dre_index_faiss_train_size), read back from the staging
 * file once that many exist (or at the end, on all of them if the corpus is smaller);
 * only then are vectors added. That sample is the one buffer not bounded by a window.
 * A quantized index gets its rescoring vectors (index/rescore.h) at the end, from the
 * staged ones (and the index's earlier ones, for --append). */
#define _POSIX_C_SOURCE 200809L
#include "index/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"
#include "index/docstore.h"
#include "index/index.h"
#include "index/rescore.h"
#include "index/vindex.h"

#define STAGING_VECTORS_FILE "embed-vectors.f32"
#define STAGING_DOCS_FILE "embed-docs.sqlite"
#define LOCK_FILE "embed.lock"
/* Vectors read back from the staging file at a time when rebuilding or training. */
#define STAGED_CHUNK 16384

struct index_writer {
    char dir[PATH_MAX];
    char checkpoint_path[PATH_MAX], vectors_path[PATH_MAX], staging_docs_path[PATH_MAX];
    int lock_fd;
    docstore *docs;
    int vectors_fd;
    vindex *vx;
    dre_quantize quantize;
    dre_rescore rescore;
    int trained;
    int64_t train_size;
    int32_t dim;
    char factory[CHECKPOINT_FIELD_CAP];
    int64_t base_count;   /* rows the index had before this embed */
    int64_t count;        /* documents staged by this embed */
    int64_t base_vectors; /* vectors the index had before (= base_count unless chunked) */
    int64_t vectors;      /* vectors staged by this embed */
    int64_t pending;      /* vectors of the window's documents, until commit */
    int chunked;          /* vectors map to documents through the chunks table */
    int staging;          /* the staging files belong to this run */
    int64_t checkpointed; /* documents staged as of the last checkpoint written */
    int finished;
    index_trainer_fn trainer; /* set: training is the trainer's, at finish (sharded embeds) */
    void *trainer_user;
};

/* ------------------------------------------------------------------ lock */

/* Takes an exclusive flock on dir/embed.lock. The file is removed on close; a process
 * that opened it just before the removal would lock a dead inode, hence the inode check. */
static dre_status lock_index(const char *dir, int *fd_out) {
    char path[PATH_MAX];
    DRE_TRY(dre_path_join(path, sizeof path, dir, LOCK_FILE));
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT, 0644);
        if (fd < 0) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            close(fd);
            if (err == EWOULDBLOCK)
                return dre_set_error(DRE_ERR_LOCKED,
                                     "%s: another dre embed is writing this index (%s is locked)",
                                     dir, LOCK_FILE);
            return dre_set_error(DRE_ERR_IO, "%s: flock: %s", path, strerror(err));
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(path, &now) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev) {
            *fd_out = fd;
            return DRE_OK;
        }
        close(fd);
    }
    return dre_set_error(DRE_ERR_LOCKED, "%s: could not take %s", dir, LOCK_FILE);
}

static void unlock_index(const char *dir, int fd) {
    dre_remove_in(dir, LOCK_FILE);
    close(fd);
}

static void remove_staging(const char *dir) {
    dre_remove_in(dir, STAGING_VECTORS_FILE);
    dre_remove_in(dir, STAGING_DOCS_FILE);
    dre_remove_in(dir, STAGING_DOCS_FILE "-wal");
    dre_remove_in(dir, STAGING_DOCS_FILE "-shm");
    dre_remove_in(dir, STAGING_DOCS_FILE "-journal");
    dre_remove_in(dir, INDEX_CHECKPOINT_FILE ".tmp");
    dre_remove_in(dir, INDEX_FAISS_FILE ".tmp");
    dre_remove_in(dir, INDEX_META_FILE ".tmp");
    dre_remove_in(dir, INDEX_RESCORE_INT8_FILE ".tmp");
    dre_remove_in(dir, INDEX_RESCORE_FP32_FILE ".tmp");
}

dre_status dre_index_writer_open(const char *dir, index_writer **out) {
    *out = NULL;
    index_writer *w = calloc(1, sizeof *w);
    if (!w) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", dir);
    w->vectors_fd = -1;
    w->lock_fd = -1;
    dre_status st = DRE_OK;
    if (strlen(dir) >= sizeof w->dir)
        st = dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", dir);
    if (st == DRE_OK) {
        strcpy(w->dir, dir);
        st = dre_path_join(w->checkpoint_path, sizeof w->checkpoint_path, dir,
                           INDEX_CHECKPOINT_FILE);
    }
    if (st == DRE_OK)
        st = dre_path_join(w->vectors_path, sizeof w->vectors_path, dir, STAGING_VECTORS_FILE);
    if (st == DRE_OK)
        st = dre_path_join(w->staging_docs_path, sizeof w->staging_docs_path, dir,
                           STAGING_DOCS_FILE);
    if (st == DRE_OK) st = lock_index(dir, &w->lock_fd);
    if (st != DRE_OK) {
        free(w);
        return st;
    }
    *out = w;
    return DRE_OK;
}

void dre_index_writer_close(index_writer *w) {
    if (!w) return;
    dre_docstore_close(w->docs);
    if (w->vectors_fd >= 0) close(w->vectors_fd);
    dre_vindex_free(w->vx);
    /* A run with nothing checkpointed leaves nothing to resume: clean up, so the same
     * command can simply be run again. */
    if (w->staging && !w->finished && w->checkpointed == 0) {
        dre_remove_in(w->dir, INDEX_CHECKPOINT_FILE);
        remove_staging(w->dir);
    }
    unlock_index(w->dir, w->lock_fd);
    free(w);
}

const char *dre_index_writer_checkpoint_path(const index_writer *w) { return w->checkpoint_path; }

int64_t dre_index_writer_count(const index_writer *w) { return w->count; }

void dre_index_writer_reserve(index_writer *w, int64_t n) {
    if (w->vx) dre_vindex_reserve(w->vx, n);
}

/* ------------------------------------------------------------------ staged vectors */

/* Adds staged vectors [first, first + n) to the FAISS index, reading them back in chunks. */
static dre_status add_staged(index_writer *w, int64_t first, int64_t n) {
    size_t row_bytes = (size_t)w->dim * sizeof(float);
    int64_t chunk = n < STAGED_CHUNK ? n : STAGED_CHUNK;
    float *buf = malloc((size_t)(chunk > 0 ? chunk : 1) * row_bytes);
    if (!buf) return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory reading staged vectors");
    dre_status st = DRE_OK;
    for (int64_t done = 0; done < n && st == DRE_OK; done += chunk) {
        int64_t m = n - done < chunk ? n - done : chunk;
        st = dre_pread_all(w->vectors_fd, buf, (size_t)m * row_bytes,
                           (first + done) * (int64_t)row_bytes, w->vectors_path);
        if (st == DRE_OK) st = dre_vindex_add(w->vx, m, buf);
    }
    free(buf);
    return st;
}

dre_status dre_index_writer_read_staged(index_writer *w, int64_t first, int64_t n, float *out) {
    if (first < 0 || n < 0 || first + n > w->vectors)
        return dre_set_error(DRE_ERR_INVALID_ARG, "staged vectors %lld..%lld of %lld",
                             (long long)first, (long long)(first + n), (long long)w->vectors);
    size_t row_bytes = (size_t)w->dim * sizeof(float);
    return dre_pread_all(w->vectors_fd, out, (size_t)n * row_bytes, first * (int64_t)row_bytes,
                         w->vectors_path);
}

/* Whether the writer trains the index itself once train_size vectors are staged. */
static int trains_itself(const index_writer *w) { return w->trainer == NULL; }

/* Trains the index on the first min(vectors, train_size) staged vectors, then adds them all;
 * with a trainer, the trainer's index takes the untrained one's place instead. */
static dre_status train_from_staged(index_writer *w) {
    if (w->trainer) {
        vindex *replacement = NULL;
        DRE_TRY(w->trainer(w->trainer_user, w, w->vx, &replacement));
        if (replacement) {
            if (dre_vindex_dim(replacement) != w->dim || dre_vindex_ntotal(replacement) != 0 ||
                !dre_vindex_is_trained(replacement)) {
                dre_vindex_free(replacement);
                return dre_set_error(DRE_ERR_INDEX,
                                     "%s: the shared trained index is not an empty, trained "
                                     "index of dim %d",
                                     w->dir, w->dim);
            }
            dre_vindex_free(w->vx);
            w->vx = replacement;
        } else if (!dre_vindex_is_trained(w->vx)) {
            return dre_set_error(DRE_ERR_INDEX, "%s: the index was not trained", w->dir);
        }
        w->trained = 1;
        return add_staged(w, 0, w->vectors);
    }
    int64_t n = w->vectors < w->train_size ? w->vectors : w->train_size;
    if (n == 0)
        return dre_set_error(DRE_ERR_FORMAT, "index \"%s\" needs training: no documents",
                             w->factory);
    size_t bytes = (size_t)n * (size_t)w->dim * sizeof(float);
    float *sample = malloc(bytes);
    if (!sample)
        return dre_set_error(DRE_ERR_NOMEM, "embed: out of memory for %lld training vectors",
                             (long long)n);
    dre_status st = dre_pread_all(w->vectors_fd, sample, bytes, 0, w->vectors_path);
    if (st == DRE_OK) st = dre_vindex_train(w->vx, n, sample);
    free(sample);
    DRE_TRY(st);
    w->trained = 1;
    return add_staged(w, 0, w->vectors);
}

/* ------------------------------------------------------------------ start and resume */

dre_status dre_index_writer_start(index_writer *w, const checkpoint *c) {
    remove_staging(w->dir);
    w->staging = 1;
    if (c->base_count > 0) {
        char path[PATH_MAX];
        DRE_TRY(dre_path_join(path, sizeof path, w->dir, INDEX_DOCS_FILE));
        DRE_TRY(dre_docstore_copy(path, w->staging_docs_path));
    }
    int fd = open(w->vectors_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return dre_set_error(DRE_ERR_IO, "%s: %s", w->vectors_path, strerror(errno));
    close(fd);
    /* The docstore file must exist before the checkpoint that refers to it. */
    docstore *ds = NULL;
    DRE_TRY(dre_docstore_open(w->staging_docs_path, 1, &ds));
    dre_status st = c->bm25 ? dre_docstore_add_bm25(ds) : DRE_OK;
    if (st == DRE_OK && c->chunk_tokens > 0) st = dre_docstore_add_chunks_table(ds);
    dre_docstore_close(ds);
    DRE_TRY(st);
    return dre_checkpoint_write(w->checkpoint_path, c);
}

dre_status dre_index_writer_resume(index_writer *w, const checkpoint *c) {
    const char *dir = w->dir;
    w->staging = 1;
    w->checkpointed = c->count;
    w->base_count = c->base_count;
    w->count = c->count;
    w->base_vectors = c->base_vectors;
    w->vectors = c->vectors;
    w->chunked = c->chunk_tokens > 0;
    w->dim = c->dim;
    w->quantize = c->quantize;
    w->rescore = c->rescore;
    snprintf(w->factory, sizeof w->factory, "%s", c->factory);
    char final_docs[PATH_MAX];
    DRE_TRY(dre_path_join(final_docs, sizeof final_docs, dir, INDEX_DOCS_FILE));
    /* A run killed while finishing may have renamed the staging docstore already. */
    if (access(w->staging_docs_path, F_OK) != 0) {
        if (access(final_docs, F_OK) != 0)
            return dre_set_error(DRE_ERR_IO,
                                 "%s: %s is missing; the interrupted embed cannot be "
                                 "resumed (remove the folder and start over)",
                                 dir, STAGING_DOCS_FILE);
        DRE_TRY(dre_rename_synced(final_docs, w->staging_docs_path));
    }
    DRE_TRY(dre_docstore_open(w->staging_docs_path, 1, &w->docs));
    if (dre_docstore_has_bm25(w->docs) != c->bm25)
        return dre_set_error(DRE_ERR_INDEX, "%s: %s %s a BM25 table, but the checkpoint says %s",
                             dir, STAGING_DOCS_FILE, c->bm25 ? "lacks" : "has",
                             c->bm25 ? "yes" : "no");
    if (dre_docstore_has_chunks(w->docs) != w->chunked)
        return dre_set_error(DRE_ERR_INDEX, "%s: %s %s a chunks table, but the checkpoint says %s",
                             dir, STAGING_DOCS_FILE, w->chunked ? "lacks" : "has",
                             w->chunked ? "yes" : "no");
    int64_t total = c->base_count + c->count;
    DRE_TRY(dre_docstore_truncate(w->docs, total));
    int64_t n_docs = 0;
    DRE_TRY(dre_docstore_count(w->docs, &n_docs));
    if (n_docs != total)
        return dre_set_error(DRE_ERR_INDEX,
                             "%s: staging docstore has %lld rows, checkpoint says %lld", dir,
                             (long long)n_docs, (long long)total);
    int64_t total_vectors = c->base_vectors + c->vectors, n_chunks = 0;
    DRE_TRY(dre_docstore_chunk_count(w->docs, &n_chunks));
    if (w->chunked && n_chunks != total_vectors)
        return dre_set_error(DRE_ERR_INDEX,
                             "%s: staging docstore has %lld chunks, checkpoint says %lld vectors",
                             dir, (long long)n_chunks, (long long)total_vectors);

    w->vectors_fd = open(w->vectors_path, O_RDWR);
    if (w->vectors_fd < 0)
        return dre_set_error(DRE_ERR_IO, "%s: %s", w->vectors_path, strerror(errno));
    off_t want = (off_t)c->vectors * (off_t)c->dim * (off_t)sizeof(float);
    struct stat st;
    if (fstat(w->vectors_fd, &st) != 0 || st.st_size < want)
        return dre_set_error(DRE_ERR_IO, "%s: holds fewer vectors than the checkpoint's %lld",
                             w->vectors_path, (long long)c->vectors);
    if (ftruncate(w->vectors_fd, want) != 0)
        return dre_set_error(DRE_ERR_IO, "%s: truncate: %s", w->vectors_path, strerror(errno));

    int64_t already = 0; /* staged vectors the FAISS index already holds */
    if (c->base_count > 0) {
        char path[PATH_MAX];
        DRE_TRY(dre_path_join(path, sizeof path, dir, INDEX_FAISS_FILE));
        DRE_TRY(dre_vindex_read(path, w->quantize, &w->vx));
        int64_t ntotal = dre_vindex_ntotal(w->vx);
        if (ntotal == total_vectors)
            already = c->vectors; /* killed after renaming the new index */
        else if (ntotal != c->base_vectors)
            return dre_set_error(DRE_ERR_INDEX, "%s: index.faiss holds %lld vectors, expected %lld",
                                 dir, (long long)ntotal, (long long)c->base_vectors);
    } else {
        DRE_TRY(dre_vindex_create(c->factory, c->quantize, c->dim, &w->vx));
    }
    if (dre_vindex_dim(w->vx) != c->dim)
        return dre_set_error(DRE_ERR_MISMATCH, "%s: index.faiss has dim %d, the model %d", dir,
                             dre_vindex_dim(w->vx), c->dim);
    w->trained = dre_vindex_is_trained(w->vx);
    w->train_size = dre_vindex_train_size(w->vx);
    if (w->trained) return add_staged(w, already, c->vectors - already);
    if (c->vectors >= w->train_size && trains_itself(w)) return train_from_staged(w);
    return DRE_OK;
}

void dre_index_writer_set_trainer(index_writer *w, index_trainer_fn fn, void *user) {
    w->trainer = fn;
    w->trainer_user = user;
}

int64_t dre_index_writer_vectors(const index_writer *w) { return w->vectors; }

int64_t dre_index_writer_train_size(const index_writer *w) { return w->train_size; }

dre_quantize dre_index_writer_quantize(const index_writer *w) { return w->quantize; }

/* ------------------------------------------------------------------ windows */

dre_status dre_index_writer_begin(index_writer *w) { return dre_docstore_begin(w->docs); }

dre_status dre_index_writer_add_doc(index_writer *w, const char *id, const char *title,
                                    const char *text, int32_t n_chunks, const index_chunk *chunks,
                                    int64_t *duplicate_of) {
    if (n_chunks < 1 || (!w->chunked && n_chunks != 1))
        return dre_set_error(DRE_ERR_INVALID_ARG, "index writer: a document of %d vectors",
                             n_chunks);
    int64_t row = w->base_count + w->count;
    DRE_TRY(dre_docstore_add(w->docs, row, id, title, text, duplicate_of));
    if (*duplicate_of >= 0) return DRE_OK;
    for (int32_t i = 0; w->chunked && i < n_chunks; i++)
        DRE_TRY(dre_docstore_add_chunk(w->docs, w->base_vectors + w->vectors + w->pending + i, row,
                                       i, chunks[i].first, chunks[i].tokens));
    w->count++;
    w->pending += n_chunks;
    return DRE_OK;
}

dre_status dre_index_writer_commit(index_writer *w, const float *vectors, int64_t n) {
    if (n != w->pending)
        return dre_set_error(DRE_ERR_INVALID_ARG, "index writer: %lld vectors for %lld",
                             (long long)n, (long long)w->pending);
    size_t row_bytes = (size_t)w->dim * sizeof(float);
    DRE_TRY(dre_pwrite_all(w->vectors_fd, vectors, (size_t)n * row_bytes,
                           w->vectors * (int64_t)row_bytes, w->vectors_path));
    DRE_TRY(dre_docstore_commit(w->docs));
    w->vectors += n;
    w->pending = 0;
    if (w->trained) return dre_vindex_add(w->vx, n, vectors);
    if (w->vectors >= w->train_size && trains_itself(w)) return train_from_staged(w);
    return DRE_OK;
}

dre_status dre_index_writer_checkpoint(index_writer *w, checkpoint *c) {
    if (fdatasync(w->vectors_fd) != 0)
        return dre_set_error(DRE_ERR_IO, "%s: sync: %s", w->vectors_path, strerror(errno));
    DRE_TRY(dre_docstore_sync(w->docs));
    c->count = w->count;
    c->vectors = w->vectors;
    DRE_TRY(dre_checkpoint_write(w->checkpoint_path, c));
    w->checkpointed = w->count;
    return DRE_OK;
}

/* ------------------------------------------------------------------ finish */

/* A quantized index's rescoring vectors: the index's earlier ones (--append), then the staged
 * ones. A run killed after renaming them into place left a file of all the rows: kept. */
static dre_status write_rescore(index_writer *w, int64_t total_vectors) {
    if (w->quantize == DRE_QUANTIZE_NONE) return DRE_OK;
    char path[PATH_MAX];
    DRE_TRY(dre_path_join(path, sizeof path, w->dir, dre_rescore_file_name(w->rescore)));
    rescore_vectors *base = NULL;
    if (w->base_vectors > 0) {
        if (w->vectors > 0 &&
            dre_rescore_open(path, w->rescore, w->dim, total_vectors, &base) == DRE_OK) {
            dre_rescore_close(base);
            return DRE_OK;
        }
        DRE_TRY(dre_rescore_open(path, w->rescore, w->dim, w->base_vectors, &base));
    }
    dre_status st = dre_rescore_write(path, w->rescore, w->dim, base, w->vectors_fd,
                                      w->vectors_path, w->vectors, INDEX_RESCORE_TRAIN_SIZE);
    dre_rescore_close(base);
    return st;
}

dre_status dre_index_writer_finish(index_writer *w, dre_index_info *meta) {
    const char *dir = w->dir;
    int64_t total_vectors = w->base_vectors + w->vectors;
    if (!w->trained) DRE_TRY(train_from_staged(w));
    if (dre_vindex_ntotal(w->vx) != total_vectors)
        return dre_set_error(DRE_ERR_INDEX, "index holds %lld vectors, expected %lld",
                             (long long)dre_vindex_ntotal(w->vx), (long long)total_vectors);
    DRE_TRY(write_rescore(w, total_vectors));
    char path[PATH_MAX];
    DRE_TRY(dre_path_join(path, sizeof path, dir, INDEX_FAISS_FILE));
    DRE_TRY(dre_vindex_write(w->vx, path));
    dre_docstore_close(w->docs); /* back to a single file, no -wal */
    w->docs = NULL;
    DRE_TRY(dre_path_join(path, sizeof path, dir, INDEX_DOCS_FILE));
    DRE_TRY(dre_rename_synced(w->staging_docs_path, path));
    meta->count = w->base_count + w->count;
    meta->n_vectors = total_vectors;
    DRE_TRY(dre_index_meta_write(dir, meta));
    dre_remove_in(dir, INDEX_CHECKPOINT_FILE);
    remove_staging(dir);
    w->finished = 1;
    return dre_sync_path(dir);
}

/* ------------------------------------------------------------------ BM25 for an index */

static dre_status add_bm25_locked(index_writer *w) {
    const char *dir = w->dir;
    if (dre_file_exists_in(dir, INDEX_CHECKPOINT_FILE))
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "%s: an embed into this folder has not finished (%s is there); finish "
                             "it with `dre embed --resume` first",
                             dir, INDEX_CHECKPOINT_FILE);
    dre_index *ix = NULL;
    DRE_TRY(dre_index_open(dir, &ix));
    dre_index_info info = *dre_index_get_info(ix);
    dre_index_close(ix);
    if (info.bm25) return DRE_OK;
    char docs_path[PATH_MAX];
    DRE_TRY(dre_path_join(docs_path, sizeof docs_path, dir, INDEX_DOCS_FILE));
    /* Built in a copy, renamed into place: a crash leaves the old docstore as it was. */
    remove_staging(dir);
    docstore *ds = NULL;
    dre_status st = dre_docstore_copy(docs_path, w->staging_docs_path);
    if (st == DRE_OK) st = dre_docstore_open(w->staging_docs_path, 1, &ds);
    if (st == DRE_OK) st = dre_docstore_add_bm25(ds);
    dre_docstore_close(ds); /* back to a single file */
    if (st == DRE_OK) st = dre_rename_synced(w->staging_docs_path, docs_path);
    if (st != DRE_OK) {
        remove_staging(dir);
        return st;
    }
    info.bm25 = 1;
    return dre_index_meta_write(dir, &info);
}

dre_status dre_index_add_bm25(const char *index_dir) {
    if (!index_dir) return dre_set_error(DRE_ERR_INVALID_ARG, "dre_index_add_bm25: NULL argument");
    dre_index *probe = NULL; /* an index folder at all, before its lock is taken */
    DRE_TRY(dre_index_open(index_dir, &probe));
    dre_index_close(probe);
    index_writer *w = NULL;
    DRE_TRY(dre_index_writer_open(index_dir, &w));
    dre_status st = add_bm25_locked(w);
    dre_index_writer_close(w);
    return st;
}
