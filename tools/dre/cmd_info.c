/* cmd_info.c — placeholder until `dre info` lands. */
#include "cli.h"

int cmd_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre info: not built yet\n");
    return 1;
}
