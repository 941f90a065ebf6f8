/* File helpers for the agent's state folder; see files.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/files.h"
#include "base/alloc.h"

int fs_mkdir_p(const char *path, unsigned mode)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int fs_write_file(const char *path, const char *data, size_t len)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int r = 0;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (remove(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int fs_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return r > 0 ? -EIO : r;
}

int fs_read_tail(const char *path, size_t max, char **ret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    size_t size = (size_t)st.st_size;
    size_t want = MIN(size, max);
    char *b = xmalloc(want + 1);
    ssize_t n = pread(fd, b, want, (off_t)(size - want));
    close(fd);
    if (n < 0) {
        free(b);
        return -errno;
    }
    b[n] = 0;
    char *start = b;
    if (want < size) {
        char *nl = memchr(b, '\n', (size_t)n);
        if (nl)
            start = nl + 1;
    }
    *ret = xstrdup(start);
    free(b);
    return 0;
}
