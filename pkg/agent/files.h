/* Small file helpers for the agent's state folder: create a path, write a file atomically,
 * remove a tree, read the tail of a log. Any thread; blocking. */
#pragma once

#include <stddef.h>

/* mkdir -p with mode for every component created. Returns 0 or -errno. */
int fs_mkdir_p(const char *path, unsigned mode);
/* Writes data to path through "<path>.tmp" + rename. Returns 0 or -errno. */
int fs_write_file(const char *path, const char *data, size_t len);
/* rm -rf: removes path and everything below it, not following symlinks; 0 when absent. */
int fs_rm_rf(const char *path);
/* The last (at most) max bytes of a file, starting after a newline when cut: 0 and a new string
 * in *ret; -ENOENT when the file does not exist. */
int fs_read_tail(const char *path, size_t max, char **ret);
