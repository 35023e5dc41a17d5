/* cmd_tokenize.c — `dre tokenize`: texts on stdin, one per line, to token ids (or the
 * vocabulary entries) on stdout, one line each. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: dre tokenize [--model DIR] [--max-length N] [--tokens]\n\n"
               "Reads texts from stdin, one per line, and prints for each the token ids\n"
               "([CLS] ... [SEP], truncated to the max length) separated by spaces.\n\n"
               "  --model DIR       Hugging Face model folder (default: $DRE_MODEL or\n"
               "                    models/all-MiniLM-L6-v2)\n"
               "  --max-length N    ids per text, [CLS] and [SEP] included (default: the\n"
               "                    model's, from sentence_bert_config.json or config.json)\n"
               "  --tokens          print the vocabulary entries instead of the ids\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_dir = cli_default_model();
    long max_length = 0;
    int tokens = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (!strcmp(argv[i], "--max-length") && i + 1 < argc) {
            char *end;
            max_length = strtol(argv[++i], &end, 10);
            if (*end || max_length < 2 || max_length > 1000000)
                return cli_usage_error("tokenize", "--max-length wants an integer >= 2, not '%s'",
                                       argv[i]);
        } else if (!strcmp(argv[i], "--tokens")) {
            tokens = 1;
        } else {
            return cli_usage_error("tokenize", "unknown or incomplete option '%s'", argv[i]);
        }
    }

    dre_tokenizer *tok;
    dre_status st = dre_tokenizer_open(model_dir, &tok);
    if (st != DRE_OK) return cli_fail("tokenize", st);
    if (max_length <= 0) max_length = dre_tokenizer_max_length(tok);
    int32_t *ids = malloc((size_t)max_length * sizeof *ids);
    char *line = NULL;
    size_t cap = 0;
    long len;
    int rc = 0;
    if (!ids) {
        fprintf(stderr, "dre tokenize: out of memory\n");
        rc = 1;
    }
    while (!rc && (len = cli_read_line(stdin, &line, &cap)) >= 0) {
        int32_t n;
        st = dre_tokenize(tok, line, (size_t)len, (int32_t)max_length, ids, &n);
        if (st != DRE_OK) {
            rc = cli_fail("tokenize", st);
            break;
        }
        for (int32_t i = 0; i < n; i++) {
            if (i) putchar(' ');
            if (tokens)
                fputs(dre_tokenizer_token(tok, ids[i]), stdout);
            else
                printf("%d", (int)ids[i]);
        }
        putchar('\n');
    }
    if (!rc && (ferror(stdout) || fflush(stdout) != 0)) {
        fprintf(stderr, "dre tokenize: write error on stdout\n");
        rc = 1;
    }
    free(line);
    free(ids);
    dre_tokenizer_close(tok);
    return rc;
}
