/* dist/none.c — the dist calls in a program built without MPI (the plain dre): one process,
 * rank 0 of 1, and the calls that need ranks say so. main.c hands a dre started by mpirun to
 * its sibling dre-mpi, which links libdre_dist (dist.c) and Open MPI; dre itself never loads
 * MPI's libraries. */
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"

int dre_dist_available(void) { return 0; }

static dre_status no_mpi(void) {
    return dre_set_error(DRE_ERR_UNSUPPORTED,
                         "this program was built without MPI: run dre-mpi (dre does so by itself "
                         "when mpirun starts it)");
}

dre_status dre_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return no_mpi();
}
int dre_dist_rank(void) { return 0; }
int dre_dist_size(void) { return 1; }
int dre_dist_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
int dre_dist_error_shared(void) { return 1; }
void dre_dist_abort(int code) { exit(code); }
void dre_dist_finalize(void) {}

dre_status dre_embed_sharded(const char *model_dir, const char *corpus_path, const char *index_dir,
                             const dre_embed_options *opts, dre_embed_summary *summary) {
    (void)model_dir, (void)corpus_path, (void)index_dir, (void)opts, (void)summary;
    return no_mpi();
}

dre_status dre_dist_searcher_open(const char *index_dir, const char *model_dir, dre_device device,
                                  dre_precision precision, dre_searcher **out) {
    (void)index_dir, (void)model_dir, (void)device, (void)precision;
    if (out) *out = NULL;
    return no_mpi();
}

void dre_dist_searcher_close(dre_searcher *s) { (void)s; }
