/* cli_util.c — small helpers shared by the dre commands. */
#include <stdarg.h>
#include <stdlib.h>

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
