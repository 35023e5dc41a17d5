/* cmd_export.c — placeholder until `dre export` lands. */
#include "cli.h"

int cmd_export(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre export: not built yet\n");
    return 1;
}
