/* text/corpus.h — a streaming reader for corpora: BEIR JSONL, TSV, or one text per line.
 * It holds one line in memory at a time, remembers the byte offset of the next line (so
 * an interrupted embed can resume there), and reports each bad line as "file:line: what"
 * while moving past it, so the caller chooses to skip it or to stop. */
#ifndef DRE_CORPUS_H
#define DRE_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dre_corpus_open, dre_corpus_next and dre_corpus_close are dre.h's; what the embed
 * pipeline needs besides: */

/* Byte offset of the next line to read, and the number of lines read so far. */
int64_t dre_corpus_offset(const dre_corpus *r);
int64_t dre_corpus_line(const dre_corpus *r);
/* File size in bytes at open time. */
int64_t dre_corpus_size(const dre_corpus *r);
/* The format actually read (never AUTO). */
dre_corpus_format dre_corpus_format_of(const dre_corpus *r);
const char *dre_corpus_path(const dre_corpus *r);

/* Continues reading at byte offset, which must be a line start previously returned by
 * dre_corpus_offset; line is the number of lines before it. */
dre_status dre_corpus_seek(dre_corpus *r, int64_t offset, int64_t line);

/* Reads only the lines that start before byte end (a line start: one process's part of
 * the corpus in a sharded embed); dre_corpus_size then says end. */
void dre_corpus_set_end(dre_corpus *r, int64_t end);

/* The format AUTO would choose for path. */
dre_corpus_format dre_corpus_guess_format(const char *path);
const char *dre_corpus_format_name(dre_corpus_format format);

#ifdef __cplusplus
}
#endif
#endif
