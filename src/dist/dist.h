/* dist/dist.h — what the MPI parts of dre share: the communicator of the job, and how a
 * status becomes every rank's (libdre_dist; the public calls are dre.h's dre_dist_*). */
#ifndef DRE_DIST_DIST_H
#define DRE_DIST_DIST_H

#include <mpi.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The job's communicator (MPI_COMM_WORLD once dre_dist_init has run). */
MPI_Comm dre_dist_comm(void);

/* Every rank passes its own status; every rank gets back the first failed rank's status and
 * error message (prefixed "rank r: "), or DRE_OK when none failed. Collective. The error is
 * then shared (dre_dist_error_shared): rank 0 reports it. */
dre_status dre_dist_agree(dre_status st);

/* root's status and error message, sent to every rank and returned by each. Collective. */
dre_status dre_dist_share(dre_status st, int root);

/* Marks the error being returned as this rank's own (0) or every rank's (1). */
void dre_dist_set_shared(int shared);

#ifdef __cplusplus
}
#endif
#endif
