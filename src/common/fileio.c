/* common/fileio.c — atomic file replacement, synced renames and full pread/pwrite loops. */
#define _POSIX_C_SOURCE 200809L
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

dre_status dre_sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dre_set_error(DRE_ERR_IO, "%s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems refuse fsync on a folder; the rename itself still happened. */
    if (rc != 0 && err != EINVAL && err != EBADF)
        return dre_set_error(DRE_ERR_IO, "%s: fsync: %s", path, strerror(err));
    return DRE_OK;
}

static void parent_dir(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
    } else if (slash == path) {
        snprintf(out, cap, "/");
    } else {
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
    }
}

dre_status dre_rename_synced(const char *from, const char *to) {
    if (rename(from, to) != 0)
        return dre_set_error(DRE_ERR_IO, "rename %s -> %s: %s", from, to, strerror(errno));
    char dir[PATH_MAX];
    parent_dir(to, dir, sizeof dir);
    return dre_sync_path(dir);
}

dre_status dre_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dre_set_error(DRE_ERR_INVALID_ARG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return dre_set_error(DRE_ERR_IO, "%s: %s", tmp, strerror(errno));
    dre_status st = dre_pwrite_all(fd, data, len, 0, tmp);
    if (st != DRE_OK) {
        close(fd);
        unlink(tmp);
        return st;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int err = errno;
        unlink(tmp);
        return dre_set_error(DRE_ERR_IO, "%s: %s", tmp, strerror(err));
    }
    return dre_rename_synced(tmp, path);
}

dre_status dre_pwrite_all(int fd, const void *data, size_t len, int64_t offset, const char *path) {
    const char *c = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, c, len, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return dre_set_error(DRE_ERR_IO, "%s: write: %s", path, strerror(errno));
        c += n;
        len -= (size_t)n;
        offset += n;
    }
    return DRE_OK;
}

dre_status dre_pread_all(int fd, void *data, size_t len, int64_t offset, const char *path) {
    char *c = data;
    while (len > 0) {
        ssize_t n = pread(fd, c, len, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return dre_set_error(DRE_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (n == 0) return dre_set_error(DRE_ERR_IO, "%s: shorter than expected", path);
        c += n;
        len -= (size_t)n;
        offset += n;
    }
    return DRE_OK;
}

int dre_file_exists_in(const char *dir, const char *name) {
    char path[PATH_MAX];
    return dre_path_join(path, sizeof path, dir, name) == DRE_OK && access(path, F_OK) == 0;
}

void dre_remove_in(const char *dir, const char *name) {
    char path[PATH_MAX];
    if (dre_path_join(path, sizeof path, dir, name) == DRE_OK) unlink(path);
}
