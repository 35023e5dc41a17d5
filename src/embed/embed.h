/* embed/embed.h — an embed of one part of a corpus into a folder of its own: what a
 * sharded embed (dist/) runs on each process, dre_embed being the part that is the whole
 * corpus. */
#ifndef DRE_EMBED_EMBED_H
#define DRE_EMBED_EMBED_H

#include <stdint.h>

#include "dre.h"
#include "index/writer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct embed_part {
    int64_t start, end;   /* the lines that start in corpus bytes [start, end) */
    int64_t first_line;   /* lines before start (documents' line numbers, TSV/lines ids) */
    index_trainer_fn trainer; /* trains an index that needs it (NULL: the writer does) */
    void *trainer_user;
} embed_part;

/* dre_embed of the part's lines alone. A part with no documents makes an empty index (a
 * shard may have none). A --resume must give the same part as the run it continues. */
dre_status dre_embed_part(const char *model_dir, const char *corpus_path, const char *index_dir,
                          const dre_embed_options *opts, const embed_part *part,
                          dre_embed_summary *summary);

#ifdef __cplusplus
}
#endif
#endif
