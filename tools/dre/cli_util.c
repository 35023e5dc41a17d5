/* cli_util.c — small helpers shared by the dre commands. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_fail(const char *cmd, dre_status status) {
    const char *msg = dre_last_error();
    fprintf(stderr, "dre %s: %s%s%s\n", cmd, dre_status_str(status), msg[0] ? ": " : "", msg);
    return 1;
}

int cli_dist_fail(const char *cmd, dre_status status) {
    if (!dre_dist_error_shared()) {
        const char *msg = dre_last_error();
        fprintf(stderr, "dre %s: rank %d of %d: %s%s%s\n", cmd, dre_dist_rank(), dre_dist_size(),
                dre_status_str(status), msg[0] ? ": " : "", msg);
        fflush(stderr);
        dre_dist_abort(1);
    }
    if (dre_dist_rank() == 0) cli_fail(cmd, status);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dre %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `dre %s --help`)\n", cmd);
    return 2;
}

long cli_read_line(FILE *f, char **line, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (n + 1 >= *cap) {
            size_t bigger = *cap ? *cap * 2 : 256;
            char *p = realloc(*line, bigger);
            if (!p) return -1;
            *line = p;
            *cap = bigger;
        }
        if (c == '\n') break;
        (*line)[n++] = (char)c;
    }
    if (c == EOF && n == 0) return -1;
    if (n > 0 && (*line)[n - 1] == '\r') n--;
    (*line)[n] = '\0';
    return (long)n;
}

const char *cli_default_model(void) {
    const char *env = getenv("DRE_MODEL");
    return env && env[0] ? env : "models/all-MiniLM-L6-v2";
}

const char *cli_option(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len)) return NULL;
    if (argv[*i][len] == '=') return argv[*i] + len + 1;
    if (argv[*i][len] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int cli_parse_count(const char *s, long long max, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > max) return 0;
    *out = v;
    return 1;
}

double cli_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t cli_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int parse_number(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!s[0] || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

int cli_quantize_option(int argc, char **argv, int *i, const char *cmd, dre_quantize *quantize,
                        dre_rescore *rescore, int32_t *factor, int *usage_rc) {
    const char *v;
    int missing = 0;
    long long n;
    if ((v = cli_option(argc, argv, i, "--quantize", &missing))) {
        if (dre_quantize_parse(v, quantize) != DRE_OK)
            *usage_rc = cli_usage_error(cmd, "--quantize must be none, int8 or binary, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--rescore", &missing))) {
        if (dre_rescore_parse(v, rescore) != DRE_OK)
            *usage_rc = cli_usage_error(cmd, "--rescore must be int8 or fp32, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--rescore-factor", &missing))) {
        if (!cli_parse_count(v, 1000, &n))
            *usage_rc = cli_usage_error(cmd, "--rescore-factor needs a count in 1..1000, not '%s'",
                                        v);
        else
            *factor = (int32_t)n;
    } else {
        if (missing) *usage_rc = cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return missing;
    }
    return 1;
}

int cli_search_option(int argc, char **argv, int *i, const char *cmd, dre_search_options *o,
                      int *usage_rc) {
    const char *v;
    int missing = 0;
    double x;
    long long n;
    if ((v = cli_option(argc, argv, i, "--mode", &missing))) {
        if (dre_search_mode_parse(v, &o->mode) != DRE_OK)
            *usage_rc = cli_usage_error(cmd, "--mode must be dense, bm25 or hybrid, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--fusion", &missing))) {
        if (dre_fusion_parse(v, &o->fusion) != DRE_OK)
            *usage_rc = cli_usage_error(cmd, "--fusion must be rrf or convex, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--alpha", &missing))) {
        if (parse_number(v, 0, 1, &x))
            o->alpha = x;
        else
            *usage_rc = cli_usage_error(cmd, "--alpha needs a number in 0..1, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--rrf-k", &missing))) {
        if (parse_number(v, 0, 1e9, &x))
            o->rrf_k = x;
        else
            *usage_rc = cli_usage_error(cmd, "--rrf-k needs a number >= 0, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--search-precision", &missing))) {
        if (dre_search_precision_parse(v, &o->precision) != DRE_OK)
            *usage_rc = cli_usage_error(cmd,
                                        "--search-precision must be fp16, fp32 or faiss, not "
                                        "'%s'",
                                        v);
    } else if ((v = cli_option(argc, argv, i, "--query-prompt", &missing))) {
        o->query_prompt = v;
    } else if ((v = cli_option(argc, argv, i, "--depth", &missing))) {
        if (cli_parse_count(v, 100000, &n))
            o->depth = (int32_t)n;
        else
            *usage_rc = cli_usage_error(cmd, "--depth needs a count in 1..100000, not '%s'", v);
    } else if ((v = cli_option(argc, argv, i, "--param", &missing))) {
        const char *eq = strchr(v, '=');
        dre_search_param *p = &o->params[o->n_params];
        if (!eq || eq == v || (size_t)(eq - v) >= sizeof p->name ||
            o->n_params == DRE_SEARCH_MAX_PARAMS)
            *usage_rc = cli_usage_error(cmd, "--param needs NAME=VALUE (at most %d), not '%s'",
                                        DRE_SEARCH_MAX_PARAMS, v);
        else if (!parse_number(eq + 1, 0, 1e9, &x))
            *usage_rc = cli_usage_error(cmd, "--param %s: not a number >= 0", v);
        else {
            memcpy(p->name, v, (size_t)(eq - v));
            p->name[eq - v] = '\0';
            p->value = x;
            o->n_params++;
        }
    } else {
        if (missing) *usage_rc = cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return missing;
    }
    return 1;
}

/* The .npy v1.0 header: magic, version, header length, then the dict padded with spaces
 * and a newline so the data starts at a multiple of 64 bytes. */
int cli_write_npy_header(FILE *f, long long rows, int dim) {
    char dict[256];
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d), }", rows, dim);
    if (n < 0 || n >= (int)sizeof dict - 64) return 0;
    int total = 10 + n + 1;
    int padded = (total + 63) / 64 * 64;
    int header_len = padded - 10;
    memset(dict + n, ' ', (size_t)(header_len - n - 1));
    dict[header_len - 1] = '\n';
    const unsigned char preamble[10] = {0x93,
                                        'N',
                                        'U',
                                        'M',
                                        'P',
                                        'Y',
                                        1,
                                        0,
                                        (unsigned char)(header_len & 0xff),
                                        (unsigned char)(header_len >> 8)};
    return fwrite(preamble, 1, 10, f) == 10 &&
           fwrite(dict, 1, (size_t)header_len, f) == (size_t)header_len;
}
