/* The image cache: download with libcurl (or read a local file) into a temporary file while
 * hashing, verify, rename into place. See image.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
/* SHA256_Init/Update/Final, deprecated in OpenSSL 3 in favour of EVP, are used on purpose: EVP's
 * first digest loads the default provider (method store, name maps: +0.45 MiB resident in the
 * agent, docs/agent.md "Memory"), while these call the same assembly (SHA-NI where the CPU has
 * it) directly. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "agent/image.h"
#include "base/alloc.h"

struct image_cache {
    char *dir;
    uint64_t max_bytes;
    pthread_mutex_t lock; /* one download at a time */
};

static bool sha_valid(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

int image_cache_new(const char *dir, uint64_t max_bytes, image_cache **ret)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    image_cache *c = xnew(image_cache, 1);
    c->dir = xstrdup(dir);
    c->max_bytes = max_bytes ? max_bytes : IMAGE_DEFAULT_MAX_BYTES;
    pthread_mutex_init(&c->lock, NULL);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".part")) {
            _cleanup_free_ char *p = xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    *ret = c;
    return 0;
}

image_cache *image_cache_free(image_cache *c)
{
    if (!c)
        return NULL;
    pthread_mutex_destroy(&c->lock);
    free(c->dir);
    free(c);
    return NULL;
}

const char *image_cache_dir(const image_cache *c)
{
    return c->dir;
}

typedef struct download {
    int fd;
    SHA256_CTX md;
    uint64_t bytes;
    uint64_t max;
    int error;
} download;

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
    download *d = userdata;
    size_t len = size * n;
    if (d->bytes + len > d->max) {
        d->error = -EFBIG;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(d->fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            d->error = -errno;
            return 0;
        }
        off += (size_t)w;
    }
    SHA256_Update(&d->md, p, len);
    d->bytes += len;
    return len;
}

static int curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
        return -EHOSTDOWN;
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_REMOTE_FILE_NOT_FOUND:
        return -ENOENT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return -EINVAL;
    case CURLE_FILESIZE_EXCEEDED:
        return -EFBIG;
    default:
        return -EIO;
    }
}

/* libcurl and its TLS library are set up at the first download, not at start: a node whose
 * images are all cached (the usual case after a restart) or local never pays for them
 * (docs/agent.md, "Memory"). Never cleaned up: curl_global_cleanup is not safe while another
 * cache of the process may download. */
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Reads a local file (file:///path) into d: no need for libcurl. */
static int fetch_file(const char *url, download *d, char *err)
{
    const char *path = url + strlen("file://");
    _cleanup_free_ char *plain = xstrdup(path);
    /* Percent-decoding, as libcurl does for file URLs. */
    char *o = plain;
    for (const char *p = path; *p; p++) {
        unsigned v;
        if (p[0] == '%' && p[1] && p[2] && sscanf(p + 1, "%2x", &v) == 1 && v) {
            *o++ = (char)v;
            p += 2;
        } else
            *o++ = *p;
    }
    *o = 0;
    if (plain[0] != '/') {
        snprintf(err, IMAGE_ERROR_MAX, "%s: a file URL must name an absolute path", url);
        return -EINVAL;
    }
    int fd = open(plain, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int r = -errno;
        snprintf(err, IMAGE_ERROR_MAX, "download of %s: %s", url, strerror(errno));
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, IMAGE_ERROR_MAX, "download of %s: not a regular file", url);
        return -EINVAL;
    }
    char b[65536];
    ssize_t n;
    while ((n = read(fd, b, sizeof(b))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            d->error = -errno;
        else if (on_data(b, 1, (size_t)n, d) != (size_t)n && d->error == 0)
            d->error = -EIO;
        if (d->error < 0)
            break;
    }
    close(fd);
    return 0;
}

/* Downloads url into fd, hashing; the sum goes to out. */
static int fetch(image_cache *c, const char *url, int fd, char out[65], char *err)
{
    if (strneq(url, "file://", 7)) {
        download d = {.fd = fd, .max = c->max_bytes};
        SHA256_Init(&d.md);
        int r = fetch_file(url, &d, err);
        if (r == 0 && d.error < 0) {
            r = d.error;
            snprintf(err, IMAGE_ERROR_MAX, "download of %s: %s", url,
                     r == -EFBIG ? "larger than the image size cap" : strerror(-r));
        }
        if (r == 0) {
            unsigned char md[SHA256_DIGEST_LENGTH];
            SHA256_Final(md, &d.md);
            hex(md, sizeof(md), out);
        }
        return r;
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        snprintf(err, IMAGE_ERROR_MAX, "download of %s: libcurl: %s", url,
                 curl_easy_strerror(curl_init_result));
        return -EIO;
    }
    CURL *h = curl_easy_init();
    if (!h)
        return -ENOMEM;
    download d = {.fd = fd, .max = c->max_bytes};
    SHA256_Init(&d.md);
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    int r = 0;
    if (d.error < 0) {
        r = d.error;
        snprintf(err, IMAGE_ERROR_MAX, "download of %s: %s", url,
                 r == -EFBIG ? "larger than the image size cap" : strerror(-r));
    } else if (rc != CURLE_OK) {
        r = curl_errno(rc);
        snprintf(err, IMAGE_ERROR_MAX, "download of %s: %s", url,
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
    } else {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256_Final(md, &d.md);
        hex(md, sizeof(md), out);
    }
    return r;
}

/* Fetches url into a temporary file next to path, checks its sum, renames it into place. */
static int download_locked(image_cache *c, const char *url, const char *sha256, const char *path,
                           char *err)
{
    _cleanup_free_ char *tmp = xasprintf("%s/%s.partXXXXXX", c->dir, sha256);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, IMAGE_ERROR_MAX, "cannot create %s: %s", tmp, strerror(errno));
        return -errno;
    }
    char got[65] = "";
    int r = fetch(c, url, fd, got, err);
    if (r == 0 && !streq(got, sha256)) {
        r = -EBADMSG;
        snprintf(err, IMAGE_ERROR_MAX, "sha256 mismatch for %s: expected %s, got %s", url, sha256,
                 got);
    }
    if (r == 0 && (fsync(fd) < 0 || fchmod(fd, 0644) < 0)) {
        r = -errno;
        snprintf(err, IMAGE_ERROR_MAX, "cannot write %s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (r == 0 && rename(tmp, path) < 0) {
        r = -errno;
        snprintf(err, IMAGE_ERROR_MAX, "cannot rename into %s: %s", path, strerror(errno));
    }
    if (r < 0)
        unlink(tmp);
    return r;
}

int image_cache_ensure(image_cache *c, const char *url, const char *sha256, char *err)
{
    err[0] = 0;
    if (!sha_valid(sha256)) {
        snprintf(err, IMAGE_ERROR_MAX, "sha256 \"%.80s\" is not 64 lower-case hex digits",
                 sha256 ? sha256 : "");
        return -EINVAL;
    }
    if (!url || !*url) {
        snprintf(err, IMAGE_ERROR_MAX, "no URL");
        return -EINVAL;
    }
    _cleanup_free_ char *path = xasprintf("%s/%s", c->dir, sha256);
    if (access(path, F_OK) == 0)
        return 0;
    pthread_mutex_lock(&c->lock);
    int r = 0;
    /* Another thread may have fetched it while this one waited. */
    if (access(path, F_OK) != 0)
        r = download_locked(c, url, sha256, path, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

int image_file_sha256(const char *path, char out[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    SHA256_CTX md;
    SHA256_Init(&md);
    char b[65536];
    ssize_t n;
    int r = 0;
    while ((n = read(fd, b, sizeof(b))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        SHA256_Update(&md, b, (size_t)n);
    }
    close(fd);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256_Final(d, &md);
    if (r == 0)
        hex(d, sizeof(d), out);
    return r;
}

int image_virtual_size(const char *path, backend_disk_format format, uint64_t *ret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (format == BACKEND_DISK_QCOW2) {
        /* qcow2 header: magic "QFI\xfb" at 0, virtual size as big-endian u64 at 24. */
        unsigned char h[32];
        if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "QFI\xfb", 4) != 0)
            r = -EINVAL;
        else {
            uint64_t v = 0;
            for (int i = 24; i < 32; i++)
                v = (v << 8) | h[i];
            *ret = v;
        }
    } else {
        struct stat st;
        if (fstat(fd, &st) < 0)
            r = -errno;
        else
            *ret = (uint64_t)st.st_size;
    }
    close(fd);
    return r;
}
