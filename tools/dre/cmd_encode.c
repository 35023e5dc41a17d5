/* cmd_encode.c — placeholder until `dre encode` lands. */
#include "cli.h"

int cmd_encode(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre encode: not built yet\n");
    return 1;
}
