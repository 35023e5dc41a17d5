/* cmd_tokenize.c — placeholder until `dre tokenize` lands. */
#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre tokenize: not built yet\n");
    return 1;
}
