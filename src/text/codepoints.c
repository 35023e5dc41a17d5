/* text/codepoints.c — the tokenizer's code point classes (text/codepoints.h), from the
 * generated tables, with utf8proc for NFD and lower case where Hugging Face agrees. */
#include "text/codepoints.h"

#include <stdbool.h>
#include <stddef.h>
#include <utf8proc.h>

#include "text/unicode_tables.h"

static bool in_ranges(const cp_range *r, size_t n, int32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

#define IN(table, cp) in_ranges(table, sizeof table / sizeof table[0], cp)

int32_t dre_cp_nonstarter_class(int32_t cp) {
    size_t lo = 0, hi = sizeof nonstarter_classes / sizeof nonstarter_classes[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < nonstarter_classes[mid].cp)
            hi = mid;
        else if (cp > nonstarter_classes[mid].cp)
            lo = mid + 1;
        else
            return nonstarter_classes[mid].ccc;
    }
    return 0;
}

int32_t dre_cp_lower(int32_t cp) {
    size_t lo = 0, hi = sizeof lower_overrides / sizeof lower_overrides[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < lower_overrides[mid].cp)
            hi = mid;
        else if (cp > lower_overrides[mid].cp)
            lo = mid + 1;
        else
            return lower_overrides[mid].to;
    }
    return utf8proc_tolower(cp);
}

int dre_cp_nfd(int32_t cp, int32_t *out) {
    int boundclass = 0;
    utf8proc_ssize_t n =
        IN(no_decomp_ranges, cp)
            ? 0
            : utf8proc_decompose_char(cp, out, 16, UTF8PROC_DECOMPOSE, &boundclass);
    if (n <= 0 || n > 16) {
        out[0] = cp;
        return 1;
    }
    return (int)n;
}

uint8_t dre_cp_flags(int32_t cp) {
    uint8_t f = 0;
    if (IN(other_ranges, cp)) f |= CP_OTHER;
    if (IN(space_ranges, cp)) f |= CP_SPACE;
    if (IN(cjk_ranges, cp)) f |= CP_CJK;
    if (IN(punct_ranges, cp)) f |= CP_PUNCT;
    if (IN(mark_ranges, cp)) f |= CP_MARK;
    if (dre_cp_nonstarter_class(cp)) f |= CP_NONSTARTER;
    int32_t d[16];
    if (dre_cp_nfd(cp, d) != 1 || d[0] != cp) f |= CP_DECOMPOSES;
    if (cp == 0x130 || dre_cp_lower(cp) != cp) f |= CP_LOWER;
    return f;
}
