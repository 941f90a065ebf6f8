/* The node's image cache: every image file (disk image, kernel, initrd) an instance needs,
 * downloaded once per node with libcurl (http, https; file URLs are read directly, and libcurl
 * is only set up at the first http(s) download), verified against its
 * sha256 and kept as <dir>/<sha256>. A file is only ever renamed into place after its checksum
 * matched, so the cache never holds a partial or wrong file, and a crash mid-download leaves a
 * "*.part*" file that the next download of the same image replaces (and image_cache_new removes).
 *
 * Not a general HTTP client: no resume, no auth; downloads of one cache are serialized (one
 * mutex), which is what a node wants when ten instances of one image arrive at once.
 *
 * Threads: image_cache_ensure blocks (worker threads only) and may be called from any number of
 * threads at once. The library does not log. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "agent/backend.h"
#include "base/macro.h"

typedef struct image_cache image_cache;

#define IMAGE_DEFAULT_MAX_BYTES ((uint64_t)64 << 30) /* largest image accepted */
#define IMAGE_ERROR_MAX         512

/* Creates the folder if needed and removes leftovers of interrupted downloads. max_bytes 0 → the
 * default. Returns 0 and the cache in *ret, or -errno. */
int image_cache_new(const char *dir, uint64_t max_bytes, image_cache **ret);
image_cache *image_cache_free(image_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(image_cache *, image_cache_free);

const char *image_cache_dir(const image_cache *c);

/* Makes sure <dir>/<sha256> holds the file at url. Returns 0 when it is there (already, or
 * downloaded and verified now); -EBADMSG when the download's checksum differs (nothing is kept;
 * err says both sums); -EINVAL for a malformed sha256 or URL; -EFBIG over the size cap; -EIO,
 * -ENOENT, -EHOSTDOWN... when the download failed (err says why). err holds IMAGE_ERROR_MAX
 * bytes. Any thread; blocks. */
int image_cache_ensure(image_cache *c, const char *url, const char *sha256, char *err);

/* The sha256 of a file as 64 lower-case hex digits. Returns 0 or -errno. */
int image_file_sha256(const char *path, char out[65]);

/* The virtual size of a disk image: the qcow2 header's size field, or a raw file's length.
 * Returns 0 or -errno (-EINVAL when a "qcow2" file has no qcow2 header). */
int image_virtual_size(const char *path, backend_disk_format format, uint64_t *ret);
