/* text/tokenizer_load.c — opening a tokenizer from a Hugging Face model folder: vocab.txt
 * (or tokenizer.json's vocabulary), tokenizer_config.json's normaliser settings and special
 * tokens, the max length as sentence-transformers takes it, and the code point table of the
 * BMP. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "text/codepoints.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h"

static int32_t vocab_id(const dre_tokenizer *tok, const char *s) {
    return dre_vocab_lookup(&tok->words, tok->tokens, s);
}

int32_t dre_tokenizer_max_length(const dre_tokenizer *tok) { return tok->max_length; }
int32_t dre_tokenizer_vocab_size(const dre_tokenizer *tok) { return tok->vocab_size; }

const char *dre_tokenizer_token(const dre_tokenizer *tok, int32_t id) {
    return tok && id >= 0 && id < tok->vocab_size ? tok->tokens[id] : NULL;
}

void dre_tokenizer_close(dre_tokenizer *tok) {
    if (!tok) return;
    dre_vocab_free(&tok->words);
    dre_vocab_free(&tok->pieces);
    free(tok->tokens);
    free(tok->vocab_text);
    free(tok);
}

/* Parses dir/name into *root; a missing file leaves *root NULL unless required. */
static dre_status read_json(const char *dir, const char *name, bool required, cJSON **root) {
    char path[4096];
    *root = NULL;
    DRE_TRY(dre_path_join(path, sizeof path, dir, name));
    if (!required && access(path, F_OK) != 0) return DRE_OK;
    char *data;
    size_t len;
    DRE_TRY(dre_read_file(path, &data, &len));
    const char *stop = NULL;
    *root = cJSON_ParseWithOpts(data, &stop, 0);
    dre_status st = DRE_OK;
    if (!*root)
        st = dre_set_error(DRE_ERR_FORMAT, "%s: malformed JSON at byte %ld", path,
                           stop ? (long)(stop - data) : 0L);
    free(data);
    return st;
}

/* A token setting: "[CLS]" or {"content": "[CLS]", ...}. */
static const char *token_text(const cJSON *item) {
    if (cJSON_IsString(item)) return item->valuestring;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

static const char *config_token(const cJSON *config, const char *key, const char *fallback) {
    const char *s = token_text(cJSON_GetObjectItemCaseSensitive(config, key));
    return s ? s : fallback;
}

/* Registers a special token found in the vocabulary (others have no id to give). */
static void add_special(dre_tokenizer *tok, const char *s) {
    if (!s || !s[0] || tok->n_specials == MAX_SPECIALS) return;
    int32_t id = vocab_id(tok, s);
    if (id < 0) return;
    for (int i = 0; i < tok->n_specials; i++)
        if (strcmp(tok->specials[i].text, tok->tokens[id]) == 0) return;
    special_token *sp = &tok->specials[tok->n_specials++];
    sp->text = tok->tokens[id];
    sp->len = strlen(sp->text);
    sp->id = id;
    tok->special_first[(uint8_t)sp->text[0]] = true;
}

static dre_status load_vocab(dre_tokenizer *tok, const char *model_dir) {
    char path[4096];
    DRE_TRY(dre_path_join(path, sizeof path, model_dir, "vocab.txt"));
    size_t len;
    DRE_TRY(dre_read_file(path, &tok->vocab_text, &len));
    if (len > UINT32_MAX) return dre_set_error(DRE_ERR_FORMAT, "%s: too large", path);
    char *text = tok->vocab_text;
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    if (len > 0 && text[len - 1] != '\n') n_lines++;
    if (n_lines == 0) return dre_set_error(DRE_ERR_FORMAT, "%s: no tokens", path);
    if (n_lines > INT32_MAX) return dre_set_error(DRE_ERR_FORMAT, "%s: too many tokens", path);
    tok->tokens = malloc(n_lines * sizeof *tok->tokens);
    if (!tok->tokens) return dre_set_error(DRE_ERR_NOMEM, "%s: out of memory", path);
    size_t n_pieces = 0, start = 0;
    for (size_t i = 0; i < n_lines; i++) {
        size_t stop = start;
        while (stop < len && text[stop] != '\n')
            stop++;
        size_t next = stop + 1;
        if (stop > start && text[stop - 1] == '\r') stop--; /* CRLF files */
        text[stop] = '\0';
        tok->tokens[i] = text + start;
        n_pieces += stop - start > 2 && text[start] == '#' && text[start + 1] == '#';
        start = next;
    }
    tok->vocab_size = (int32_t)n_lines;
    DRE_TRY(dre_vocab_init(&tok->words, n_lines, 0));
    DRE_TRY(dre_vocab_init(&tok->pieces, n_pieces, 2));
    for (size_t i = 0; i < n_lines; i++) {
        const char *entry = tok->tokens[i];
        dre_vocab_put(&tok->words, tok->tokens, (int32_t)i);
        if (entry[0] == '#' && entry[1] == '#' && entry[2])
            dre_vocab_put(&tok->pieces, tok->tokens, (int32_t)i);
    }
    return DRE_OK;
}

static bool json_bool(const cJSON *obj, const char *key, bool fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static bool json_int(const cJSON *obj, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return false;
    *out = v->valuedouble;
    return true;
}

/* Settings as BertTokenizerFast reads them (defaults: lower-case, strip accents as
 * lower-case says, split CJK), the special tokens, and the max length as
 * sentence-transformers sets it. */
static dre_status load_config(dre_tokenizer *tok, const char *model_dir) {
    cJSON *tc = NULL, *sbert = NULL, *model = NULL;
    dre_status st = read_json(model_dir, "tokenizer_config.json", false, &tc);
    if (st == DRE_OK) st = read_json(model_dir, "sentence_bert_config.json", false, &sbert);
    if (st == DRE_OK) st = read_json(model_dir, "config.json", false, &model);
    if (st != DRE_OK) goto done;

    bool do_lower_case = json_bool(tc, "do_lower_case", true);
    const cJSON *strip = cJSON_GetObjectItemCaseSensitive(tc, "strip_accents");
    tok->strip_accents = cJSON_IsBool(strip) ? cJSON_IsTrue(strip) : do_lower_case;
    /* sentence-transformers' own do_lower_case puts a Lowercase normaliser in front */
    tok->lowercase = do_lower_case || json_bool(sbert, "do_lower_case", false);
    tok->chinese = json_bool(tc, "tokenize_chinese_chars", true);

    const char *unk = config_token(tc, "unk_token", "[UNK]");
    const char *cls = config_token(tc, "cls_token", "[CLS]");
    const char *sep = config_token(tc, "sep_token", "[SEP]");
    tok->unk_id = vocab_id(tok, unk);
    tok->cls_id = vocab_id(tok, cls);
    tok->sep_id = vocab_id(tok, sep);
    if (tok->unk_id < 0 || tok->cls_id < 0 || tok->sep_id < 0) {
        st = dre_set_error(DRE_ERR_FORMAT, "%s/vocab.txt: no entry for the special token %s",
                           model_dir,
                           tok->unk_id < 0   ? unk
                           : tok->cls_id < 0 ? cls
                                             : sep);
        goto done;
    }
    add_special(tok, unk);
    add_special(tok, sep);
    add_special(tok, config_token(tc, "pad_token", "[PAD]"));
    add_special(tok, cls);
    add_special(tok, config_token(tc, "mask_token", "[MASK]"));
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(tc, "additional_special_tokens"))
        add_special(tok, token_text(item));
    /* transformers >= 4.34 lists added tokens by id; those matched on normalised text are
     * not supported and skipped */
    cJSON_ArrayForEach(item,
                       cJSON_GetObjectItemCaseSensitive(
                           tc, "added_tokens_decoder")) if (!json_bool(item, "normalized", false))
        add_special(tok, token_text(item));

    double v, max_length = 0;
    if (json_int(sbert, "max_seq_length", &v) && v > 0) {
        max_length = v;
    } else {
        max_length = 1e30; /* transformers' "no limit" */
        if (json_int(tc, "model_max_length", &v) && v > 0) max_length = v;
        if (json_int(model, "max_position_embeddings", &v) && v > 0 && v < max_length)
            max_length = v;
        if (max_length >= 1e30) max_length = 512;
    }
    if (max_length < 2 || max_length > INT32_MAX) {
        st = dre_set_error(DRE_ERR_FORMAT, "%s: max length %.0f is out of range", model_dir,
                           max_length);
        goto done;
    }
    tok->max_length = (int32_t)max_length;
done:
    cJSON_Delete(tc);
    cJSON_Delete(sbert);
    cJSON_Delete(model);
    return st;
}

static void build_classes(dre_tokenizer *tok) {
    for (int32_t cp = 0; cp < 0x10000; cp++)
        tok->flags[cp] = dre_cp_flags(cp);
    tok->slow_mask = CP_OTHER | CP_SPACE | CP_PUNCT;
    if (tok->chinese) tok->slow_mask |= CP_CJK;
    if (tok->strip_accents) tok->slow_mask |= CP_MARK | CP_NONSTARTER | CP_DECOMPOSES;
    if (tok->lowercase) tok->slow_mask |= CP_LOWER;
    for (int b = 0; b < 128; b++) {
        uint8_t f = tok->flags[b];
        uint8_t act = (f & CP_OTHER)   ? ACT_DROP
                      : (f & CP_SPACE) ? ACT_SPACE
                      : (f & CP_PUNCT) ? ACT_PUNCT
                                       : ACT_APPEND;
        if (tok->special_first[b]) act |= ACT_SPECIAL;
        tok->ascii_action[b] = act;
        tok->ascii_map[b] = (uint8_t)(tok->lowercase ? dre_cp_lower(b) : b);
    }
}

dre_status dre_tokenizer_open(const char *model_dir, dre_tokenizer **out) {
    if (!model_dir || !out)
        return dre_set_error(DRE_ERR_INVALID_ARG, "dre_tokenizer_open: NULL argument");
    *out = NULL;
    dre_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return dre_set_error(DRE_ERR_NOMEM, "dre_tokenizer_open: out of memory");
    dre_status st = load_vocab(tok, model_dir);
    if (st == DRE_OK) st = load_config(tok, model_dir);
    if (st != DRE_OK) {
        dre_tokenizer_close(tok);
        return st;
    }
    build_classes(tok);
    *out = tok;
    return DRE_OK;
}
