/* index/writer.h — the only writer of an index folder's index.faiss and docs.sqlite. An
 * embed stages its work beside the finished files (embed-vectors.f32, embed-docs.sqlite,
 * the FAISS index in memory), checkpoints it, and at the end renames it into place:
 *
 *   open (takes the folder's lock) -> start (fresh) -> resume (open the staged state)
 *   -> { begin, add_doc..., commit } per window, checkpoint now and then -> finish
 *   -> close (releases the lock; a run that failed before its first checkpoint leaves
 *      nothing behind, a later failure leaves its last checkpoint to resume from).
 */
#ifndef DRE_INDEX_WRITER_H
#define DRE_INDEX_WRITER_H

#include <stdint.h>

#include "dre.h"
#include "index/checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct index_writer index_writer;

/* Takes an exclusive lock on dir (which must exist): DRE_ERR_LOCKED while another
 * embed holds it. */
dre_status dre_index_writer_open(const char *dir, index_writer **out);
/* Closes what is open, removes the staging files of a run that never checkpointed and
 * releases the lock. */
void dre_index_writer_close(index_writer *w);

/* dir/embed-checkpoint.json. */
const char *dre_index_writer_checkpoint_path(const index_writer *w);

/* A fresh run: replaces any staging files by empty ones (for --append, c->base_count > 0,
 * a copy of the folder's docstore), then writes the first checkpoint, c. */
dre_status dre_index_writer_start(index_writer *w, const checkpoint *c);
/* Opens the staging files at the state of checkpoint c: cuts off what was staged after
 * it, and puts the staged vectors into the in-memory FAISS index (training it first when
 * enough are staged). */
dre_status dre_index_writer_resume(index_writer *w, const checkpoint *c);

/* Room in the in-memory index for n more vectors, when their number is known beforehand
 * (dre index import). */
void dre_index_writer_reserve(index_writer *w, int64_t n);

/* Documents staged so far by this embed (rows base_count .. base_count + count - 1). */
int64_t dre_index_writer_count(const index_writer *w);

/* A chunk of a document: its first wordpiece in the document's text, its tokens. */
typedef struct index_chunk {
    int32_t first, tokens;
} index_chunk;

/* A window of documents: begin, then add_doc for each (the next row, with its n_chunks
 * vectors: 1 unless the index is chunked, whose chunks table then maps them to it; an id
 * already in the docstore adds nothing and gives *duplicate_of its row, else -1), then
 * commit with the added documents' vectors, in row and chunk order. */
dre_status dre_index_writer_begin(index_writer *w);
dre_status dre_index_writer_add_doc(index_writer *w, const char *id, const char *title,
                                    const char *text, int32_t n_chunks, const index_chunk *chunks,
                                    int64_t *duplicate_of);
dre_status dre_index_writer_commit(index_writer *w, const float *vectors, int64_t n);

/* Makes what is staged durable, then replaces the checkpoint file with c, its count set
 * to the documents staged. */
dre_status dre_index_writer_checkpoint(index_writer *w, checkpoint *c);

/* Sharded embeds (dist/): an index that needs training is trained by fn, for all the shards
 * alike, instead of by each writer on its own vectors. With a trainer set (before resume),
 * the writer only stages vectors until finish, which calls fn with its untrained index: fn
 * trains that one in place (*replacement NULL) or gives an empty trained index to take its
 * place (the writer's then); the staged vectors are then added to it. */
struct vindex;
typedef dre_status (*index_trainer_fn)(void *user, index_writer *w, struct vindex *untrained,
                                       struct vindex **replacement);
void dre_index_writer_set_trainer(index_writer *w, index_trainer_fn fn, void *user);
/* Vectors staged by this embed; rows [first, first + n) of them read back into out
 * (n x dim); how many vectors the index wants to be trained on; its quantization. */
int64_t dre_index_writer_vectors(const index_writer *w);
dre_status dre_index_writer_read_staged(index_writer *w, int64_t first, int64_t n, float *out);
int64_t dre_index_writer_train_size(const index_writer *w);
dre_quantize dre_index_writer_quantize(const index_writer *w);

/* Trains the index if it still needs it, writes index.faiss, moves the docstore into
 * place, then meta.json (meta with its count and n_vectors set: the last word on what the
 * folder holds), and removes the staging files and the checkpoint. */
dre_status dre_index_writer_finish(index_writer *w, dre_index_info *meta);

#ifdef __cplusplus
}
#endif
#endif
