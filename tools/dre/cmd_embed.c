/* cmd_embed.c — placeholder until `dre embed` lands. */
#include "cli.h"

int cmd_embed(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "dre embed: not built yet\n");
    return 1;
}
