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

typedef struct corpus_reader corpus_reader;

/* One document. The pointers stay valid until the next corpus_next or corpus_close. */
typedef struct corpus_record {
    const char *id;
    const char *title; /* NULL when the record has no title */
    const char *text;
    /* What gets embedded, as BEIR's SentenceBERT.encode_corpus builds it:
     * (title + " " + text).strip() when a title exists, else text.strip(). */
    const char *joined;
    size_t joined_len;
    int64_t line; /* 1-based line number in the file */
} corpus_record;

/* Opens path for reading. format AUTO picks by extension (.jsonl/.json: JSONL, .tsv: TSV,
 * anything else: lines). The field names apply to JSONL; NULL means "_id", "title",
 * "text". A missing file or a directory is DRE_ERR_IO. */
dre_status corpus_open(const char *path, dre_corpus_format format, const char *id_field,
                       const char *title_field, const char *text_field, corpus_reader **out);
void corpus_close(corpus_reader *r);

/* Reads the next document. DRE_OK and *got = 1: rec is filled. DRE_OK and *got = 0: end
 * of file. DRE_ERR_FORMAT: the line was bad (message "file:line: ..."); the reader is
 * already past it, so calling again skips it. DRE_ERR_IO / DRE_ERR_NOMEM: stop.
 * JSONL and TSV skip blank lines silently; in the lines format a blank line is an empty
 * text (its line number is a document id). The last line need not end in a newline. */
dre_status corpus_next(corpus_reader *r, corpus_record *rec, int *got);

/* Byte offset of the next line to read, and the number of lines read so far. */
int64_t corpus_offset(const corpus_reader *r);
int64_t corpus_line(const corpus_reader *r);
/* File size in bytes at open time. */
int64_t corpus_size(const corpus_reader *r);
/* The format actually read (never AUTO). */
dre_corpus_format corpus_format(const corpus_reader *r);
const char *corpus_path(const corpus_reader *r);

/* Continues reading at byte offset, which must be a line start previously returned by
 * corpus_offset; line is the number of lines before it. */
dre_status corpus_seek(corpus_reader *r, int64_t offset, int64_t line);

/* The format AUTO would choose for path. */
dre_corpus_format corpus_guess_format(const char *path);
const char *corpus_format_name(dre_corpus_format format);

#ifdef __cplusplus
}
#endif
#endif
