/* bench_tokenizer.c — placeholder until this benchmark lands. */
#include "cli.h"

int bench_tokenizer(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre bench: not built yet\n");
    return 1;
}
