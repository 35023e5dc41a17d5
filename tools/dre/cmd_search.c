/* cmd_search.c — placeholder until `dre search` lands. */
#include "cli.h"

int cmd_search(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre search: not built yet\n");
    return 1;
}
