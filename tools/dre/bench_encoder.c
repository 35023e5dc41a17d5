/* bench_encoder.c — placeholder until this benchmark lands. */
#include "cli.h"

int bench_encoder(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre bench: not built yet\n");
    return 1;
}
