/* common/fileio.h — small file helpers for the write side: files replaced atomically (written
 * to "<name>.tmp", synced, renamed), synced renames, and pread/pwrite loops that finish
 * what they start or say why not. */
#ifndef DRE_FILEIO_H
#define DRE_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "dre.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes len bytes to path.tmp, syncs it, renames it to path and syncs the folder. */
dre_status dre_write_file_atomic(const char *path, const void *data, size_t len);
/* Renames from to to and syncs the folder holding to. */
dre_status dre_rename_synced(const char *from, const char *to);
/* fsync of a file or folder by path. */
dre_status dre_sync_path(const char *path);

/* len bytes at offset of the open file fd (named path in errors), retried on EINTR and
 * short transfers; reading past the end is an error. */
dre_status dre_pwrite_all(int fd, const void *data, size_t len, int64_t offset, const char *path);
dre_status dre_pread_all(int fd, void *data, size_t len, int64_t offset, const char *path);

/* dir/name exists. */
int dre_file_exists_in(const char *dir, const char *name);
/* Removes dir/name if it exists. */
void dre_remove_in(const char *dir, const char *name);

#ifdef __cplusplus
}
#endif
#endif
