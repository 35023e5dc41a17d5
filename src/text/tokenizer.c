/* text/tokenizer.c — the BERT WordPiece tokenizer, giving the ids of Hugging Face's
 * BertTokenizerFast: special-token split, BertNormalizer (clean text, CJK spacing, NFD
 * accent stripping, lower-casing), BertPreTokenizer (whitespace, punctuation), WordPiece,
 * then [CLS] ... [SEP]. The handle is read-only after open; dre_tokenize keeps its state
 * on the stack, so any number of threads may share one handle. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/common.h"
#include "text/codepoints.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h"

static inline uint8_t cp_flags(const dre_tokenizer *tok, int32_t cp) {
    return cp < 0x10000 ? tok->flags[cp] : dre_cp_flags(cp);
}

/* ---------------------------------------------------------------- tokenizing */

typedef struct tok_state {
    const dre_tokenizer *tok;
    int32_t *out; /* wordpieces, after [CLS] */
    int32_t n_out, limit;
    bool full;                    /* a piece past limit came: the rest is truncated away */
    int32_t word_chars;           /* chars of the current word, saturating at 101 */
    size_t word_len;              /* bytes stored (the first 100 chars) */
    uint8_t word[MAX_WORD_BYTES]; /* normalised UTF-8 */
    int n_pending;
    int32_t pending_cp[PENDING_MAX];
    int32_t pending_ccc[PENDING_MAX];
} tok_state;

static inline void emit_id(tok_state *st, int32_t id) {
    if (st->n_out < st->limit)
        st->out[st->n_out++] = id;
    else
        st->full = true;
}

static inline bool is_cont_byte(uint8_t b) { return (b & 0xC0) == 0x80; }

/* Greedy longest-match-first over the stored word; a word with any unmatched rest is
 * one [UNK]. Candidates longer than the longest key are skipped, which changes nothing. */
static void word_piece(tok_state *st) {
    const dre_tokenizer *tok = st->tok;
    const uint8_t *w = st->word;
    size_t n = st->word_len, start = 0;
    int32_t pieces[MAX_WORD_CHARS];
    uint64_t prefix_hash[MAX_WORD_BYTES + 1], prefix_head[9];
    int n_pieces = 0;
    while (start < n) {
        const vocab_table *t = start == 0 ? &tok->words : &tok->pieces;
        size_t stop = n - start > t->max_len ? start + t->max_len : n;
        uint64_t h = DRE_FNV_SEED, head = 0;
        for (size_t k = start; k < stop; k++) {
            size_t i = k - start;
            prefix_hash[i + 1] = h = dre_fnv_step(h, w[k]);
            if (i < 8) prefix_head[i + 1] = head |= (uint64_t)w[k] << (8 * i);
        }
        size_t e = stop;
        while (e > start && e < n && is_cont_byte(w[e]))
            e--;
        int32_t id = -1;
        while (e > start) {
            size_t len = e - start;
            id = dre_vocab_find(t, tok->tokens, w + start, len, prefix_hash[len],
                                prefix_head[len < 8 ? len : 8]);
            if (id >= 0) break;
            do
                e--;
            while (e > start && is_cont_byte(w[e]));
        }
        if (id < 0) {
            emit_id(st, tok->unk_id);
            return;
        }
        pieces[n_pieces++] = id;
        start = e;
    }
    for (int i = 0; i < n_pieces; i++)
        emit_id(st, pieces[i]);
}

static void end_word(tok_state *st) {
    if (st->word_chars == 0) return;
    if (st->word_chars > MAX_WORD_CHARS)
        emit_id(st, st->tok->unk_id);
    else
        word_piece(st);
    st->word_chars = 0;
    st->word_len = 0;
}

static void append_cp(tok_state *st, int32_t cp) {
    if (st->word_chars < MAX_WORD_CHARS) {
        uint8_t *d = st->word + st->word_len;
        if (cp < 0x80) {
            d[0] = (uint8_t)cp;
            st->word_len += 1;
        } else if (cp < 0x800) {
            d[0] = (uint8_t)(0xC0 | (cp >> 6));
            d[1] = (uint8_t)(0x80 | (cp & 0x3F));
            st->word_len += 2;
        } else if (cp < 0x10000) {
            d[0] = (uint8_t)(0xE0 | (cp >> 12));
            d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            d[2] = (uint8_t)(0x80 | (cp & 0x3F));
            st->word_len += 3;
        } else {
            d[0] = (uint8_t)(0xF0 | (cp >> 18));
            d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            d[3] = (uint8_t)(0x80 | (cp & 0x3F));
            st->word_len += 4;
        }
    }
    if (st->word_chars <= MAX_WORD_CHARS) st->word_chars++;
}

/* A fully normalised char meets the pre-tokenizer. */
static void emit_final(tok_state *st, int32_t cp) {
    uint8_t f = cp_flags(st->tok, cp);
    if (f & CP_SPACE) {
        end_word(st);
    } else if (f & CP_PUNCT) {
        end_word(st);
        append_cp(st, cp);
        end_word(st);
    } else {
        append_cp(st, cp);
    }
}

static void emit_lowered(tok_state *st, int32_t cp) {
    if (!st->tok->lowercase || !(cp_flags(st->tok, cp) & CP_LOWER)) {
        emit_final(st, cp);
    } else if (cp == 0x130) { /* the one full lower-case mapping that expands */
        emit_final(st, 0x69);
        emit_final(st, 0x307);
    } else {
        emit_final(st, dre_cp_lower(cp));
    }
}

/* NFD's canonical ordering: a stable sort by combining class of a run of non-starters.
 * Marks removed by accent stripping can be dropped before sorting (removing items from a
 * stably sorted list leaves it sorted), except that a removed mark of class 0 ends a run. */
static void flush_pending(tok_state *st) {
    int n = st->n_pending;
    for (int i = 1; i < n; i++) {
        int32_t cp = st->pending_cp[i], ccc = st->pending_ccc[i];
        int j = i;
        for (; j > 0 && st->pending_ccc[j - 1] > ccc; j--) {
            st->pending_cp[j] = st->pending_cp[j - 1];
            st->pending_ccc[j] = st->pending_ccc[j - 1];
        }
        st->pending_cp[j] = cp;
        st->pending_ccc[j] = ccc;
    }
    st->n_pending = 0;
    for (int i = 0; i < n; i++)
        emit_lowered(st, st->pending_cp[i]);
}

/* A code point after NFD: accent stripping, reordering, then lower-casing. More than
 * PENDING_MAX surviving non-starters in a row are sorted in chunks (HF sorts the run). */
static void push_decomposed(tok_state *st, int32_t cp) {
    if (st->tok->strip_accents) {
        uint8_t f = cp_flags(st->tok, cp);
        if (f & CP_MARK) {
            if (st->n_pending && utf8proc_get_property(cp)->combining_class == 0) flush_pending(st);
            return;
        }
        if (f & CP_NONSTARTER) {
            if (st->n_pending == PENDING_MAX) flush_pending(st);
            st->pending_cp[st->n_pending] = cp;
            st->pending_ccc[st->n_pending] = dre_cp_nonstarter_class(cp);
            st->n_pending++;
            return;
        }
    }
    if (st->n_pending) flush_pending(st);
    emit_lowered(st, cp);
}

static void space(tok_state *st) {
    if (st->n_pending) flush_pending(st);
    end_word(st);
}

static void push_decomposing(tok_state *st, int32_t cp, uint8_t f) {
    if (st->tok->strip_accents && (f & CP_DECOMPOSES)) {
        int32_t d[16];
        int n = dre_cp_nfd(cp, d);
        for (int i = 0; i < n; i++)
            push_decomposed(st, d[i]);
    } else {
        push_decomposed(st, cp);
    }
}

/* One input code point, through clean_text and CJK spacing. */
static void push_char(tok_state *st, int32_t cp) {
    const dre_tokenizer *tok = st->tok;
    uint8_t f = cp_flags(tok, cp);
    if (!(f & tok->slow_mask)) {
        if (st->n_pending) flush_pending(st);
        append_cp(st, cp);
    } else if (f & CP_OTHER) {
        /* removed before anything else sees it: not even a word boundary */
    } else if (f & CP_SPACE) {
        space(st);
    } else if (tok->chinese && (f & CP_CJK)) {
        space(st);
        push_decomposing(st, cp, f);
        space(st);
    } else {
        push_decomposing(st, cp, f);
    }
}

/* Decodes one UTF-8 sequence starting with a byte >= 0x80; returns its length, or 0 when
 * the byte does not start a valid sequence within avail bytes (overlong, surrogate, above
 * U+10FFFF, truncated, or a stray continuation byte). */
static size_t decode_utf8(const uint8_t *p, size_t avail, int32_t *cp) {
    uint8_t b0 = p[0];
    if (b0 < 0xC2) return 0;
    if (b0 < 0xE0) {
        if (avail < 2 || !is_cont_byte(p[1])) return 0;
        *cp = ((int32_t)(b0 & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (b0 < 0xF0) {
        if (avail < 3 || !is_cont_byte(p[1]) || !is_cont_byte(p[2])) return 0;
        if ((b0 == 0xE0 && p[1] < 0xA0) || (b0 == 0xED && p[1] >= 0xA0)) return 0;
        *cp = ((int32_t)(b0 & 0x0F) << 12) | ((int32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (b0 < 0xF5) {
        if (avail < 4 || !is_cont_byte(p[1]) || !is_cont_byte(p[2]) || !is_cont_byte(p[3]))
            return 0;
        if ((b0 == 0xF0 && p[1] < 0x90) || (b0 == 0xF4 && p[1] >= 0x90)) return 0;
        *cp = ((int32_t)(b0 & 0x07) << 18) | ((int32_t)(p[1] & 0x3F) << 12) |
              ((int32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* The longest special token spelled out at p (HF matches them leftmost-longest on the raw
 * text), or NULL. */
static const special_token *match_special(const dre_tokenizer *tok, const uint8_t *p,
                                          size_t avail) {
    const special_token *best = NULL;
    for (int i = 0; i < tok->n_specials; i++) {
        const special_token *s = &tok->specials[i];
        if (s->len <= avail && (!best || s->len > best->len) && memcmp(p, s->text, s->len) == 0)
            best = s;
    }
    return best;
}

/* Wordpieces of text into out, at most limit of them; *truncated says whether there were
 * more (the text is read up to the first piece past the limit, and no further). */
static void word_pieces(const dre_tokenizer *tok, const char *text, size_t len, int32_t *out,
                        int32_t limit, int32_t *n_out, bool *truncated) {
    tok_state st;
    st.tok = tok;
    st.out = out;
    st.n_out = 0;
    st.limit = limit;
    st.full = false;
    st.word_chars = 0;
    st.word_len = 0;
    st.n_pending = 0;

    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    while (p < end && !st.full) {
        uint8_t b = *p;
        if (b < 0x80) {
            uint8_t act = tok->ascii_action[b];
            if (act == ACT_APPEND) { /* the hot path: a run of ASCII word chars */
                if (st.n_pending) flush_pending(&st);
                do {
                    if (st.word_chars < MAX_WORD_CHARS) st.word[st.word_len++] = tok->ascii_map[b];
                    if (st.word_chars <= MAX_WORD_CHARS) st.word_chars++;
                    p++;
                } while (p < end && (b = *p) < 0x80 && tok->ascii_action[b] == ACT_APPEND);
                continue;
            }
            if (act & ACT_SPECIAL) {
                const special_token *s = match_special(tok, p, (size_t)(end - p));
                if (s) {
                    space(&st);
                    emit_id(&st, s->id);
                    p += s->len;
                    continue;
                }
                act &= (uint8_t)~ACT_SPECIAL;
            }
            p++;
            if (act == ACT_APPEND) {
                if (st.n_pending) flush_pending(&st);
                append_cp(&st, tok->ascii_map[b]);
                continue;
            }
            if (act == ACT_DROP) continue;
            space(&st);
            if (act == ACT_PUNCT) {
                append_cp(&st, tok->ascii_map[b]);
                end_word(&st);
            }
            continue;
        }
        if (tok->special_first[b]) {
            const special_token *s = match_special(tok, p, (size_t)(end - p));
            if (s) {
                space(&st);
                emit_id(&st, s->id);
                p += s->len;
                continue;
            }
        }
        int32_t cp;
        size_t n = decode_utf8(p, (size_t)(end - p), &cp);
        if (n == 0) { /* U+FFFD, which clean_text removes */
            p++;
            continue;
        }
        p += n;
        push_char(&st, cp);
    }
    space(&st);
    *n_out = st.n_out;
    *truncated = st.full;
}

dre_status dre_tokenize_ids(const dre_tokenizer *tok, const char *text, size_t len,
                            int32_t max_length, int32_t *ids, int32_t *n_ids, int *truncated) {
    if (!tok || !ids || !n_ids || (!text && len))
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_tokenize: NULL argument");
    if (!text) text = ""; /* NULL with len 0 is an empty text; NULL + 0 is not defined in C */
    if (max_length <= 0) max_length = tok->max_length;
    if (max_length < 2)
        return dre_set_error(DRE_ERR_INVALID_ARG,
                             "dre_tokenize: max_length %d leaves no room for [CLS] and [SEP]",
                             (int)max_length);
    int32_t n = 0;
    bool cut = false;
    word_pieces(tok, text, len, ids + 1, max_length - 2, &n, &cut);
    ids[0] = tok->cls_id;
    ids[n + 1] = tok->sep_id;
    *n_ids = n + 2;
    if (truncated) *truncated = cut;
    return DRE_OK;
}

dre_status dre_tokenize(const dre_tokenizer *tok, const char *text, size_t len, int32_t max_length,
                        int32_t *ids, int32_t *n_ids) {
    return dre_tokenize_ids(tok, text, len, max_length, ids, n_ids, NULL);
}

dre_status dre_tokenize_pieces(const dre_tokenizer *tok, const char *text, size_t len,
                               int32_t *pieces, int32_t cap, int32_t *n_pieces, int *truncated) {
    if (!tok || (!pieces && cap > 0) || !n_pieces || !truncated || (!text && len) || cap < 0)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_tokenize_pieces: bad argument");
    bool cut = false;
    word_pieces(tok, text ? text : "", len, pieces, cap, n_pieces, &cut);
    *truncated = cut;
    return DRE_OK;
}

int32_t dre_tokenizer_cls_id(const dre_tokenizer *tok) { return tok->cls_id; }
int32_t dre_tokenizer_sep_id(const dre_tokenizer *tok) { return tok->sep_id; }
