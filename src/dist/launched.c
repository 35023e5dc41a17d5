/* dist/launched.c — whether an MPI launcher started this process: in both the MPI build of
 * the dist calls (dist.c) and the one without (none.c), which then hands over to dre-mpi. */
#include <stdlib.h>

#include "dre.h"

/* Open MPI's launcher sets OMPI_COMM_WORLD_*, PMIx-based ones PMIX_RANK, MPICH's PMI_RANK. */
int dre_dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}
