/* dist/dist.c — the job: whether MPI started this process, MPI's start and end, which GPU and
 * how many cores a rank takes, and statuses made common to the ranks. */
#define _GNU_SOURCE
#include "dist/dist.h"

#include <dirent.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

static int active; /* MPI initialised by dre_dist_init */
static int rank_, size_ = 1, threads_;
static _Thread_local int error_shared;

int dre_dist_available(void) { return 1; }

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : fallback;
}

/* The rank's place on its node, from the launcher's environment (before MPI starts). */
static int local_rank(void) {
    int r = env_int("OMPI_COMM_WORLD_LOCAL_RANK", -1);
    if (r < 0) r = env_int("MPI_LOCALRANKID", -1);
    if (r < 0) r = env_int("SLURM_LOCALID", 0);
    return r;
}

static int local_size(void) {
    int n = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", -1);
    if (n < 1) n = env_int("MPI_LOCALNRANKS", 1);
    return n > 0 ? n : 1;
}

/* The node's NVIDIA GPUs, as the driver lists them (no CUDA call: CUDA_VISIBLE_DEVICES must
 * be set before CUDA starts). */
static int driver_gpu_count(void) {
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* One GPU per rank, local rank modulo the GPUs: of CUDA_VISIBLE_DEVICES's list when the user
 * gave one, else of the driver's. */
static void choose_gpu(void) {
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    char chosen[64];
    if (visible && *visible) {
        int n = 1;
        for (const char *p = visible; *p; p++) n += *p == ',';
        int want = local_rank() % n;
        const char *p = visible;
        for (int i = 0; i < want; i++) p = strchr(p, ',') + 1;
        size_t len = strcspn(p, ",");
        if (len >= sizeof chosen) return;
        memcpy(chosen, p, len);
        chosen[len] = '\0';
    } else {
        int n = driver_gpu_count();
        if (n < 1) return;
        snprintf(chosen, sizeof chosen, "%d", local_rank() % n);
    }
    setenv("CUDA_VISIBLE_DEVICES", chosen, 1);
}

/* The node's cores over the ranks on it, and no more than the launcher bound this rank to. */
static int share_of_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int share = (int)(online > 0 ? online : 1) / local_size();
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < share)
        share = CPU_COUNT(&set);
    return share > 0 ? share : 1;
}

dre_status dre_dist_init(int *argc, char ***argv) {
    if (active) return DRE_OK;
    choose_gpu();
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return dre_set_error(DRE_ERR_UNSUPPORTED, "MPI_Init_thread failed");
    active = 1;
    if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        active = 0;
        return dre_set_error(DRE_ERR_UNSUPPORTED,
                             "this MPI gives no thread support (MPI_THREAD_SERIALIZED): dre calls "
                             "MPI from more than one thread, one at a time");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    threads_ = share_of_cores();
    if (!getenv("OMP_NUM_THREADS")) omp_set_num_threads(threads_);
    return DRE_OK;
}

int dre_dist_rank(void) { return rank_; }
int dre_dist_size(void) { return size_; }

int dre_dist_threads(void) {
    if (active) return threads_;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

MPI_Comm dre_dist_comm(void) { return MPI_COMM_WORLD; }

int dre_dist_error_shared(void) { return error_shared; }
void dre_dist_set_shared(int shared) { error_shared = shared; }

void dre_dist_abort(int code) {
    if (active) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

void dre_dist_finalize(void) {
    if (!active) return;
    MPI_Finalize();
    active = 0;
}

/* A status and its message, as one rank sends it to the others. */
typedef struct shared_status {
    int status;
    char message[1024];
} shared_status;

dre_status dre_dist_share(dre_status st, int root) {
    shared_status s = {.status = st};
    if (rank_ == root && st != DRE_OK) {
        if (root == 0)
            snprintf(s.message, sizeof s.message, "%s", dre_last_error());
        else
            snprintf(s.message, sizeof s.message, "rank %d: %s", root, dre_last_error());
    }
    MPI_Bcast(&s, (int)sizeof s, MPI_BYTE, root, MPI_COMM_WORLD);
    dre_dist_set_shared(1);
    if (s.status == DRE_OK) return DRE_OK;
    return dre_set_error((dre_status)s.status, "%s", s.message);
}

dre_status dre_dist_agree(dre_status st) {
    int mine = st == DRE_OK ? size_ : rank_, first = size_;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == size_) {
        dre_dist_set_shared(1);
        return DRE_OK;
    }
    return dre_dist_share(st, first);
}
