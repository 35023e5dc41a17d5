/* cmd_eval.c — placeholder until `dre eval` lands. */
#include "cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre eval: not built yet\n");
    return 1;
}
