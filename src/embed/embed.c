/* embed/embed.c — dre_embed: opens the model, decides what the index folder needs (a fresh
 * run, --append to an existing index, --resume of an interrupted one, or nothing left to
 * do), checks the options against the folder's state, runs the pipeline (embed/pipeline.h)
 * into the index writer (index/writer.h) and finishes the index. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "common/fileio.h"
#include "embed/embed.h"
#include "embed/pipeline.h"
#include "index/checkpoint.h"
#include "index/index.h"
#include "index/shards.h"
#include "index/vindex.h"
#include "index/writer.h"
#include "text/corpus.h"
#include "text/sequences.h"

#define DEFAULT_CHECKPOINT_EVERY 10000

void dre_embed_options_init(dre_embed_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->factory = NULL;
    opts->device = DRE_DEVICE_AUTO;
    opts->budget_tokens = 0;
    opts->n_threads = 0;
    opts->format = DRE_CORPUS_AUTO;
    opts->checkpoint_every = DEFAULT_CHECKPOINT_EVERY;
    opts->chunk_overlap = -1;
}

/* An embed being set up. */
typedef struct embed_run {
    const dre_embed_options *opts;
    const char *index_dir;
    dre_corpus *reader;
    dre_encoder *enc;
    index_writer *writer;
    const dre_tokenizer *tok;
    int32_t max_length, budget_tokens;
    int64_t checkpoint_every;
    FILE *errors;
    checkpoint ck;
    const embed_part *part; /* NULL: the whole corpus */
} embed_run;

static const char *field_or(const char *value, const char *fallback) {
    return value ? value : fallback;
}

/* Options given on a resumed run must agree with the run it continues. */
static dre_status check_resume_options(const dre_embed_options *o, const checkpoint *c,
                                       const char *dir) {
    const char *what = NULL;
    if (o->factory && strcmp(o->factory, c->factory))
        what = "index factory";
    else if (o->format != DRE_CORPUS_AUTO && o->format != c->format)
        what = "corpus format";
    else if (o->id_field && strcmp(o->id_field, c->id_field))
        what = "id field";
    else if (o->title_field && strcmp(o->title_field, c->title_field))
        what = "title field";
    else if (o->text_field && strcmp(o->text_field, c->text_field))
        what = "text field";
    else if (o->no_bm25 && c->bm25)
        what = "BM25 setting (--no-bm25)";
    else if (o->doc_prompt && strcmp(o->doc_prompt, c->doc_prompt))
        what = "document prompt";
    else if (o->query_prompt && strcmp(o->query_prompt, c->query_prompt))
        what = "query prompt";
    else if ((o->quantize != DRE_QUANTIZE_NONE && o->quantize != c->quantize) ||
             (o->rescore != DRE_RESCORE_NONE && o->rescore != c->rescore) ||
             (o->rescore_factor > 0 && o->rescore_factor != c->rescore_factor))
        what = "quantization (--quantize, --rescore, --rescore-factor)";
    else if ((o->chunk_tokens > 0 && o->chunk_tokens != c->chunk_tokens) ||
             (o->chunk_tokens > 0 && o->chunk_overlap >= 0 && o->chunk_overlap != c->chunk_overlap))
        what = "chunking (--chunk-tokens, --chunk-overlap)";
    if (what)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "%s: --resume with a different %s than the "
                             "interrupted embed (see %s)",
                             dir, what, INDEX_CHECKPOINT_FILE);
    return DRE_OK;
}

static int32_t default_window_cap(int32_t budget_tokens) {
    int32_t cap = budget_tokens / 16;
    if (cap < 64) cap = 64;
    if (cap > 8192) cap = 8192;
    return cap;
}

/* --append: the existing index must agree with the model and with the options given. */
static dre_status check_base(const embed_run *p, const dre_model_info *m,
                             dre_index_info *base_meta) {
    const dre_embed_options *o = p->opts;
    const char *dir = p->index_dir;
    dre_index *existing = NULL;
    DRE_TRY(dre_index_open(dir, &existing));
    *base_meta = *dre_index_get_info(existing);
    dre_index_close(existing);
    char meta_path[PATH_MAX];
    DRE_TRY(dre_path_join(meta_path, sizeof meta_path, dir, INDEX_META_FILE));
    DRE_TRY(dre_index_model_matches(meta_path, m, base_meta->dim, base_meta->weights_sha256,
                                    base_meta));
    if (o->factory && strcmp(o->factory, base_meta->factory))
        return dre_set_error(DRE_ERR_MISMATCH, "%s: index factory is \"%s\", not \"%s\"", dir,
                             base_meta->factory, o->factory);
    if ((o->doc_prompt && strcmp(o->doc_prompt, base_meta->doc_prompt)) ||
        (o->query_prompt && strcmp(o->query_prompt, base_meta->query_prompt)))
        return dre_set_error(DRE_ERR_MISMATCH,
                             "%s: the index's prompts are \"%s\" (documents) and \"%s\" "
                             "(queries); --append cannot change them",
                             dir, base_meta->doc_prompt, base_meta->query_prompt);
    if (o->chunk_tokens > 0 &&
        (o->chunk_tokens != base_meta->chunk_tokens ||
         (o->chunk_overlap >= 0 && o->chunk_overlap != base_meta->chunk_overlap)))
        return dre_set_error(DRE_ERR_MISMATCH,
                             "%s: the index's documents are cut into chunks of %d tokens "
                             "(overlap %d); --append cannot change that",
                             dir, base_meta->chunk_tokens, base_meta->chunk_overlap);
    if ((o->quantize != DRE_QUANTIZE_NONE && o->quantize != base_meta->quantize) ||
        (o->rescore != DRE_RESCORE_NONE && o->rescore != base_meta->rescore))
        return dre_set_error(DRE_ERR_MISMATCH,
                             "%s: the index is quantized as %s (rescoring from %s); --append "
                             "cannot change that",
                             dir, dre_quantize_name(base_meta->quantize),
                             dre_rescore_name(base_meta->rescore));
    if (o->no_bm25 && base_meta->bm25)
        return dre_set_error(DRE_ERR_MISMATCH,
                             "%s: the index has a BM25 table, which --append keeps up to date "
                             "(--no-bm25 cannot apply)",
                             dir);
    return DRE_OK;
}

/* Fresh start: checks an existing index (--append), fills the checkpoint record, and has
 * the writer make the staging files. */
static dre_status start_fresh(embed_run *p, const dre_model_info *m) {
    const dre_embed_options *o = p->opts;
    const char *dir = p->index_dir;
    dre_index_info base_meta;
    int have_base = 0;
    if (dre_file_exists_in(dir, INDEX_META_FILE)) {
        if (!o->append)
            return dre_set_error(DRE_ERR_INVALID_ARG,
                                 "%s already holds an index; use --append to add to it, or choose "
                                 "another folder",
                                 dir);
        DRE_TRY(check_base(p, m, &base_meta));
        have_base = 1;
    }
    checkpoint *c = &p->ck;
    memset(c, 0, sizeof *c);
    if (p->part) { /* where a resume of a run killed before its first checkpoint starts */
        c->offset = p->part->start;
        c->line = p->part->first_line;
    }
    c->base_count = have_base ? base_meta.count : 0;
    c->bm25 = have_base ? base_meta.bm25 : !o->no_bm25;
    c->base_vectors = have_base ? base_meta.n_vectors : 0;
    c->chunk_tokens = have_base ? base_meta.chunk_tokens : o->chunk_tokens;
    c->chunk_overlap = have_base               ? base_meta.chunk_overlap
                       : o->chunk_overlap >= 0 ? o->chunk_overlap
                                               : o->chunk_tokens / 4;
    const char *doc_prompt =
        have_base ? base_meta.doc_prompt : field_or(o->doc_prompt, m->doc_prompt);
    const char *query_prompt =
        have_base ? base_meta.query_prompt : field_or(o->query_prompt, m->query_prompt);
    if (strlen(doc_prompt) >= DRE_PROMPT_CAP || strlen(query_prompt) >= DRE_PROMPT_CAP)
        return dre_set_error(DRE_ERR_INVALID_ARG, "a prompt longer than %d bytes",
                             DRE_PROMPT_CAP - 1);
    strcpy(c->doc_prompt, doc_prompt);
    strcpy(c->query_prompt, query_prompt);
    if (c->chunk_tokens < 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "chunks of %d tokens", c->chunk_tokens);
    if (c->chunk_tokens > 0) { /* the sizes must leave room for text after the prompt */
        seq_tokenizer t;
        DRE_TRY(dre_seq_tokenizer_init(&t, p->tok, p->max_length, c->doc_prompt, 1));
        dre_status st = dre_seq_tokenizer_chunk(&t, c->chunk_tokens, c->chunk_overlap);
        dre_seq_tokenizer_free(&t);
        DRE_TRY(st);
    }
    c->window_cap = default_window_cap(p->budget_tokens);
    c->every = p->checkpoint_every;
    c->budget_tokens = p->budget_tokens;
    c->dim = m->hidden;
    snprintf(c->weights_sha256, sizeof c->weights_sha256, "%s", m->weights_sha256);
    if (have_base) {
        c->quantize = base_meta.quantize;
        c->rescore = base_meta.rescore;
        c->rescore_factor = base_meta.rescore_factor;
    } else {
        DRE_TRY(dre_checkpoint_quantize(c, o->quantize, o->rescore, o->rescore_factor));
    }
    const char *factory = have_base ? base_meta.factory
                                    : field_or(o->factory, dre_vindex_default_factory(c->quantize));
    c->format = dre_corpus_format_of(p->reader);
    DRE_TRY(dre_checkpoint_names(c, factory, o->id_field, o->title_field, o->text_field));
    c->errors_bytes = -1;
    if (o->errors_path && strlen(o->errors_path) < sizeof c->errors_path) {
        strcpy(c->errors_path, o->errors_path);
        c->errors_bytes = 0; /* opened anew, empty */
    }
    return dre_index_writer_start(p->writer, c);
}

/* Opens the --errors file: new for a fresh run; for a resumed one, the same file cut back
 * to what the checkpoint had listed, since the lines after it are read again. */
static dre_status open_errors(embed_run *p, int resuming) {
    const char *path = p->opts->errors_path;
    checkpoint *c = &p->ck;
    int64_t listed = resuming && path && !strcmp(path, c->errors_path) ? c->errors_bytes : -1;
    c->errors_path[0] = '\0'; /* from here on: this run's file, its size set at checkpoints */
    c->errors_bytes = -1;
    if (!path) return DRE_OK;
    p->errors = fopen(path, resuming ? "a" : "w");
    if (!p->errors) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (listed >= 0 && fstat(fileno(p->errors), &st) == 0 && (int64_t)st.st_size > listed &&
        ftruncate(fileno(p->errors), (off_t)listed) != 0)
        return dre_set_error(DRE_ERR_IO, "%s: truncate: %s", path, strerror(errno));
    if (strlen(path) < sizeof c->errors_path) strcpy(c->errors_path, path);
    return DRE_OK;
}

/* ------------------------------------------------------------------ dre_embed */

/* Writes the finished index: everything staged, and meta.json from the model. */
static dre_status finish(embed_run *p, const dre_model_info *m) {
    const checkpoint *c = &p->ck;
    if (c->base_count + dre_index_writer_count(p->writer) == 0 && !p->part)
        return dre_set_error(DRE_ERR_FORMAT, "%s: no documents to index%s",
                             dre_corpus_path(p->reader), c->skipped ? " (every line was bad)" : "");
    dre_index_info meta = {0};
    snprintf(meta.model_name, sizeof meta.model_name, "%s", m->name);
    snprintf(meta.weights_sha256, sizeof meta.weights_sha256, "%s", m->weights_sha256);
    meta.dim = m->hidden;
    meta.pooling = m->pooling;
    meta.normalize = m->normalize;
    meta.max_length = m->max_length;
    snprintf(meta.factory, sizeof meta.factory, "%s", c->factory);
    meta.bm25 = c->bm25;
    meta.format_version = c->quantize != DRE_QUANTIZE_NONE ? 3 : c->chunk_tokens > 0 ? 2 : 1;
    meta.quantize = c->quantize;
    meta.rescore = c->rescore;
    meta.rescore_factor = c->rescore_factor;
    meta.chunk_tokens = c->chunk_tokens;
    meta.chunk_overlap = c->chunk_tokens > 0 ? c->chunk_overlap : 0;
    strcpy(meta.doc_prompt, c->doc_prompt);
    strcpy(meta.query_prompt, c->query_prompt);
    /* what embedded these documents; with --append, and the earlier ones */
    snprintf(meta.doc_precision, sizeof meta.doc_precision, "%s",
             dre_encoder_device(p->enc) == DRE_DEVICE_GPU ? "fp16"
                                                          : dre_precision_name(p->opts->precision));
    dre_index_info base;
    if (c->base_count > 0 && dre_index_meta_read(p->index_dir, &base) == DRE_OK &&
        strcmp(base.doc_precision, meta.doc_precision) != 0) /* unrecorded stays unrecorded */
        snprintf(meta.doc_precision, sizeof meta.doc_precision, "%s",
                 base.doc_precision[0] ? "mixed" : "");
    return dre_index_writer_finish(p->writer, &meta);
}

static dre_status embed_locked(embed_run *p, const char *model_dir, const char *corpus_path,
                               dre_embed_summary *summary) {
    const dre_embed_options *o = p->opts;
    const char *dir = p->index_dir;
    dre_model *model = NULL;
    dre_tokenizer *tok = NULL;
    dre_status st = dre_model_open(model_dir, &model);
    if (st == DRE_OK) st = dre_tokenizer_open(model_dir, &tok);
    if (st == DRE_OK)
        st = dre_encoder_open_with(model, o->device, o->budget_tokens, o->precision, &p->enc);
    if (st != DRE_OK) goto done;
    const dre_model_info *m = dre_model_get_info(model);
    p->tok = tok;
    p->budget_tokens = dre_encoder_budget_tokens(p->enc);
    p->max_length = m->max_length;
    if (dre_tokenizer_max_length(tok) < p->max_length)
        p->max_length = dre_tokenizer_max_length(tok);
    /* Checked here, not at the first document that happens to use such a token. */
    if (dre_tokenizer_vocab_size(tok) > m->vocab_size) {
        st = dre_set_error(DRE_ERR_FORMAT,
                           "%s/vocab.txt has %d entries, but config.json's vocab_size is %d: the "
                           "model has no embedding for the ids past it",
                           model_dir, dre_tokenizer_vocab_size(tok), m->vocab_size);
        goto done;
    }

    int resuming = 0;
    const char *checkpoint_path = dre_index_writer_checkpoint_path(p->writer);
    if (dre_file_exists_in(dir, INDEX_CHECKPOINT_FILE)) {
        if (!o->resume) {
            st =
                dre_set_error(DRE_ERR_INVALID_ARG,
                              "%s: an earlier embed into this folder did not finish (%s is there); "
                              "pass --resume to continue it, or delete %s to abandon it",
                              dir, INDEX_CHECKPOINT_FILE, INDEX_CHECKPOINT_FILE);
            goto done;
        }
        if ((st = dre_checkpoint_read(checkpoint_path, &p->ck)) != DRE_OK) goto done;
        if ((st = dre_index_model_matches(checkpoint_path, m, p->ck.dim, p->ck.weights_sha256,
                                          NULL)) != DRE_OK ||
            (st = check_resume_options(o, &p->ck, dir)) != DRE_OK)
            goto done;
        resuming = 1;
        const checkpoint *c = &p->ck;
        st = dre_corpus_open(corpus_path, c->format, c->id_field, c->title_field, c->text_field,
                             &p->reader);
        if (st == DRE_OK && p->part && (c->offset < p->part->start || c->offset > p->part->end))
            st = dre_set_error(DRE_ERR_INVALID_ARG,
                               "%s: the interrupted embed stopped at byte %lld of the corpus, "
                               "outside this part (bytes %lld to %lld): resume with the same "
                               "corpus and number of processes",
                               dir, (long long)c->offset, (long long)p->part->start,
                               (long long)p->part->end);
        if (st == DRE_OK) st = dre_corpus_seek(p->reader, c->offset, c->line);
    } else if (o->resume && !o->append && dre_file_exists_in(dir, INDEX_META_FILE)) {
        /* No checkpoint but a complete index: the run being resumed finished (it was
         * killed after its last rename, say). Nothing is left to do. */
        dre_index *done_index = NULL;
        st = dre_index_open(dir, &done_index);
        if (st == DRE_OK) {
            int64_t count = dre_index_get_info(done_index)->count;
            dre_index_close(done_index);
            if (summary) {
                summary->n_total = count;
                summary->already_finished = 1;
            }
        }
        goto done;
    } else {
        /* Nothing to resume (killed before its first checkpoint, or never run): start,
         * once the corpus is known to open. */
        st = dre_corpus_open(corpus_path, o->format, o->id_field, o->title_field, o->text_field,
                             &p->reader);
        if (st == DRE_OK && p->part)
            st = dre_corpus_seek(p->reader, p->part->start, p->part->first_line);
        if (st == DRE_OK) st = start_fresh(p, m);
    }
    if (st != DRE_OK) goto done;
    if (p->part) {
        dre_corpus_set_end(p->reader, p->part->end);
        if (p->part->trainer)
            dre_index_writer_set_trainer(p->writer, p->part->trainer, p->part->trainer_user);
    }
    /* Pack as the interrupted run did, unless this encoder cannot take such batches. */
    if (p->ck.budget_tokens >= p->max_length && p->ck.budget_tokens <= p->budget_tokens)
        p->budget_tokens = (int32_t)p->ck.budget_tokens;
    st = open_errors(p, resuming);
    if (st == DRE_OK) st = dre_index_writer_resume(p->writer, &p->ck);
    if (st != DRE_OK) goto done;

    pipeline_config cfg = {.reader = p->reader,
                           .tok = tok,
                           .enc = p->enc,
                           .writer = p->writer,
                           .max_length = p->max_length,
                           .prompt = p->ck.doc_prompt,
                           .chunk_tokens = p->ck.chunk_tokens,
                           .chunk_overlap = p->ck.chunk_overlap,
                           .budget_tokens = p->budget_tokens,
                           .window_cap = (int32_t)p->ck.window_cap,
                           .checkpoint_every = p->ck.every,
                           .n_threads = o->n_threads > 0 ? o->n_threads : dre_cpu_count(),
                           .skip_bad_lines = o->skip_bad_lines,
                           .errors = p->errors,
                           .errors_path = o->errors_path,
                           .progress = o->progress,
                           .progress_user = o->progress_user};
    pipeline_counts run = {0};
    double t_start = dre_now_seconds();
    st = dre_pipeline_run(&cfg, &p->ck, &run);
    if (st == DRE_OK) st = finish(p, m);
    double seconds = dre_now_seconds() - t_start;
    int64_t total = p->ck.base_count + dre_index_writer_count(p->writer);
    if (summary) {
        summary->n_docs = run.docs;
        summary->n_vectors = run.vectors;
        summary->n_truncated = run.truncated;
        summary->max_length = p->max_length;
        summary->n_skipped = run.skipped;
        summary->n_tokens = run.tokens;
        summary->n_total = total;
        summary->seconds = seconds;
        summary->device = dre_encoder_device(p->enc);
    }
done:
    if (p->errors) fclose(p->errors);
    p->errors = NULL;
    dre_corpus_close(p->reader);
    p->reader = NULL;
    dre_encoder_close(p->enc);
    p->enc = NULL;
    dre_tokenizer_close(tok);
    dre_model_close(model);
    return st;
}

dre_status dre_embed(const char *model_dir, const char *corpus_path, const char *index_dir,
                     const dre_embed_options *opts, dre_embed_summary *summary) {
    return dre_embed_part(model_dir, corpus_path, index_dir, opts, NULL, summary);
}

dre_status dre_embed_part(const char *model_dir, const char *corpus_path, const char *index_dir,
                          const dre_embed_options *opts, const embed_part *part,
                          dre_embed_summary *summary) {
    if (!model_dir || !corpus_path || !index_dir)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_embed: NULL argument");
    if (opts && opts->append && dre_shards_is_sharded(index_dir))
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "%s is a sharded index: --append adds to one index folder (embed the "
                             "new documents into an index of their own, or `dre index merge` the "
                             "shards first)",
                             index_dir);
    if (part && opts && opts->append)
        return dre_set_error(DRE_ERR_UNSUPPORTED, "%s: a sharded embed cannot --append",
                             index_dir);
    dre_embed_options defaults;
    if (!opts) {
        dre_embed_options_init(&defaults);
        opts = &defaults;
    }
    if (summary) memset(summary, 0, sizeof *summary);
    if (mkdir(index_dir, 0755) != 0 && errno != EEXIST)
        return dre_set_error(DRE_ERR_IO, "%s: cannot create: %s", index_dir, strerror(errno));
    struct stat st_dir;
    if (stat(index_dir, &st_dir) != 0 || !S_ISDIR(st_dir.st_mode))
        return dre_set_error(DRE_ERR_IO, "%s: not a folder", index_dir);

    embed_run *p = calloc(1, sizeof *p);
    if (!p) return dre_set_error(DRE_ERR_NOMEM, "dre_embed: out of memory");
    p->opts = opts;
    p->index_dir = index_dir;
    p->part = part;
    p->checkpoint_every =
        opts->checkpoint_every > 0 ? opts->checkpoint_every : DEFAULT_CHECKPOINT_EVERY;
    dre_status st = dre_index_writer_open(index_dir, &p->writer);
    if (st == DRE_OK) {
        st = embed_locked(p, model_dir, corpus_path, summary);
        /* Closed after the error message is set: closing must not overwrite it. */
        dre_index_writer_close(p->writer);
    }
    free(p);
    return st;
}
