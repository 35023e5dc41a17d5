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
