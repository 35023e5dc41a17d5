/* text/codepoints.h — what BERT's normaliser and pre-tokenizer do with a code point, as
 * Hugging Face's tokenizers does it (text/unicode_tables.h): its classes, its canonical
 * combining class, its lower case and its NFD. */
#ifndef DRE_TEXT_CODEPOINTS_H
#define DRE_TEXT_CODEPOINTS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Code point classes, one byte per code point (the tokenizer tabulates the BMP). */
enum {
    CP_OTHER = 1 << 0,      /* removed by clean_text */
    CP_SPACE = 1 << 1,      /* whitespace: ends a word */
    CP_CJK = 1 << 2,        /* spaced out by tokenize_chinese_chars */
    CP_PUNCT = 1 << 3,      /* a word of its own */
    CP_MARK = 1 << 4,       /* Mn: removed when stripping accents */
    CP_NONSTARTER = 1 << 5, /* survives stripping, yet NFD reorders it */
    CP_DECOMPOSES = 1 << 6, /* NFD changes it */
    CP_LOWER = 1 << 7,      /* lower-casing changes it */
};

/* The CP_* classes of cp. */
uint8_t dre_cp_flags(int32_t cp);
/* The canonical combining class of a non-starter that survives accent stripping; else 0. */
int32_t dre_cp_nonstarter_class(int32_t cp);
/* Rust's char::to_lowercase for one-to-one mappings (U+0130 is the caller's). */
int32_t dre_cp_lower(int32_t cp);
/* HF's NFD of one code point into out (room for 16); returns the count. */
int dre_cp_nfd(int32_t cp, int32_t *out);

#ifdef __cplusplus
}
#endif
#endif
