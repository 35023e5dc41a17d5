/* cpu/workspace.h — per-thread scratch for the CPU encoder's operators: n_threads slices of
 * floats_per_thread floats, 64-byte aligned; the work of a call is shared out to at most
 * n_threads threads (OpenMP's count, if lower). */
#ifndef DRE_CPU_WORKSPACE_H
#define DRE_CPU_WORKSPACE_H

#include <stddef.h>

typedef struct cpu_workspace {
    float *data;
    size_t floats_per_thread;
    int n_threads;
} cpu_workspace;

#endif
