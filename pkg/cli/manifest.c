/* Manifest files for apply -f and delete -f (see manifest.h). jansson reads one document at a
 * time (JSON_DISABLE_EOF_CHECK stops after a complete value and says how many bytes it used), so
 * a file may hold several documents; line and column of a syntax error are made absolute by
 * adding where the failing document started. */
#include "cli/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/limits.h"
#include "base/alloc.h"
#include "base/buf.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Line (1-based) and column (characters before pos on its line) of byte pos. */
static void text_position(const char *data, size_t pos, int *ret_line, int *ret_col)
{
    int line = 1, col = 0;
    for (size_t i = 0; i < pos; i++) {
        if (data[i] == '\n') {
            line++;
            col = 0;
        } else if (((unsigned char)data[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    *ret_line = line;
    *ret_col = col;
}

/* jansson's texts may quote bytes of the input: keep them printable. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

static void docs_push(cli_docs *docs, json_t *obj, const char *source, char *where)
{
    docs->v = xgrow(docs->v, &docs->allocated, docs->n + 1, sizeof(cli_doc));
    docs->v[docs->n++] =
        (cli_doc){.obj = json_incref(obj), .source = xstrdup(source), .where = where};
}

/* Appends the objects of one document (an object or a List). */
static int docs_add_document(cli_docs *docs, const char *source, json_t *doc, const char *label,
                             char **ret_error)
{
    const char *sep = *label ? ": " : "";
    if (!json_is_object(doc)) {
        *ret_error = *label ? xasprintf("%s: %s: must be a JSON object", source, label)
                            : xasprintf("%s: the document must be a JSON object", source);
        return -EINVAL;
    }
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    if (!kind || !streq(kind, "List")) {
        if (docs->n >= CLI_MANIFEST_DOCS_MAX)
            goto too_many;
        docs_push(docs, doc, source, xstrdup(label));
        return 0;
    }
    const char *key;
    json_t *v;
    json_object_foreach (doc, key, v) {
        if (!streq(key, "apiVersion") && !streq(key, "kind") && !streq(key, "items") &&
            !streq(key, "metadata")) {
            *ret_error = xasprintf("%s: %s%s%s: unknown field in a List", source, label, sep, key);
            return -EINVAL;
        }
    }
    const char *version = json_string_value(json_object_get(doc, "apiVersion"));
    if (!version || !streq(version, API_VERSION)) {
        *ret_error =
            xasprintf("%s: %s%sapiVersion: must be \"%s\"", source, label, sep, API_VERSION);
        return -EINVAL;
    }
    json_t *items = json_object_get(doc, "items");
    if (!json_is_array(items)) {
        *ret_error = xasprintf("%s: %s%sitems: must be an array of objects", source, label, sep);
        return -EINVAL;
    }
    size_t i;
    json_array_foreach (items, i, v) {
        if (!json_is_object(v)) {
            *ret_error =
                xasprintf("%s: %s%sitems[%zu]: must be a JSON object", source, label, sep, i);
            return -EINVAL;
        }
        if (docs->n >= CLI_MANIFEST_DOCS_MAX)
            goto too_many;
        docs_push(docs, v, source, xasprintf("%s%sitems[%zu]", label, sep, i));
    }
    return 0;
too_many:
    *ret_error =
        xasprintf("%s: more than %d objects in one command", source, CLI_MANIFEST_DOCS_MAX);
    return -E2BIG;
}

int cli_docs_parse(cli_docs *docs, const char *source, const char *data, size_t len,
                   char **ret_error)
{
    json_t *found = json_array(); /* the documents, labelled once we know how many there are */
    size_t pos = 0;
    int r = 0;
    for (;;) {
        if (pos == 0 && len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
            pos = 3; /* a UTF-8 byte order mark, as some editors write */
        while (pos < len && is_space(data[pos]))
            pos++;
        if (pos >= len)
            break;
        json_error_t je;
        json_t *doc =
            json_loadb(data + pos, len - pos, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
        if (!doc) {
            int line, col;
            text_position(data, pos, &line, &col);
            int abs_line = line + je.line - 1, abs_col = je.line == 1 ? col + je.column : je.column;
            sanitize(je.text);
            *ret_error = xasprintf("%s: invalid JSON at line %d, column %d: %s", source, abs_line,
                                   abs_col, je.text);
            r = -EINVAL;
            break;
        }
        json_array_append_new(found, doc);
        if (je.position <= 0) { /* cannot happen for an object or array; never loop forever */
            *ret_error = xasprintf("%s: invalid JSON after byte %zu", source, pos);
            r = -EINVAL;
            break;
        }
        pos += (size_t)je.position;
        if (json_array_size(found) > CLI_MANIFEST_DOCS_MAX) {
            *ret_error = xasprintf("%s: more than %d documents", source, CLI_MANIFEST_DOCS_MAX);
            r = -E2BIG;
            break;
        }
    }
    size_t n = json_array_size(found), i;
    json_t *doc;
    json_array_foreach (found, i, doc) {
        if (r < 0)
            break;
        char label[32] = "";
        if (n > 1)
            snprintf(label, sizeof(label), "document %zu", i + 1);
        r = docs_add_document(docs, source, doc, label, ret_error);
    }
    json_decref(found);
    return r;
}

/* Reads all of fd, up to CLI_MANIFEST_FILE_MAX bytes. */
static int read_all(int fd, buf *b)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        if (buf_append(b, chunk, (size_t)n) < 0)
            return -EFBIG;
    }
}

static int docs_read_file(cli_docs *docs, const char *path, const char *source, char **ret_error)
{
    int fd = streq(path, "-") ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        *ret_error = xasprintf("%s: %s", source, strerror(-r));
        return r;
    }
    buf b = BUF_INIT(CLI_MANIFEST_FILE_MAX);
    int r = read_all(fd, &b);
    if (fd != STDIN_FILENO)
        close(fd);
    if (r == -EFBIG)
        *ret_error = xasprintf("%s: larger than %u MiB", source, CLI_MANIFEST_FILE_MAX >> 20);
    else if (r < 0)
        *ret_error = xasprintf("%s: %s", source, strerror(-r));
    else
        r = cli_docs_parse(docs, source, b.data ? b.data : "", b.len, ret_error);
    buf_done(&b);
    return r;
}

static int name_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_json_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && streq(name + n - 5, ".json") && name[0] != '.';
}

int cli_docs_read(cli_docs *docs, const char *path, char **ret_error)
{
    if (streq(path, "-"))
        return docs_read_file(docs, path, "<stdin>", ret_error);
    struct stat s;
    if (stat(path, &s) < 0) {
        int r = -errno;
        *ret_error = xasprintf("%s: %s", path, strerror(-r));
        return r;
    }
    if (!S_ISDIR(s.st_mode))
        return docs_read_file(docs, path, path, ret_error);

    DIR *d = opendir(path);
    if (!d) {
        int r = -errno;
        *ret_error = xasprintf("%s: %s", path, strerror(-r));
        return r;
    }
    char **names = NULL;
    size_t n = 0, allocated = 0;
    int r = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_json_suffix(e->d_name))
            continue;
        if (n >= CLI_MANIFEST_FILES_MAX) {
            *ret_error = xasprintf("%s: more than %d *.json files", path, CLI_MANIFEST_FILES_MAX);
            r = -E2BIG;
            break;
        }
        names = xgrow(names, &allocated, n + 1, sizeof(char *));
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(char *), name_compare);
    size_t plen = strlen(path);
    bool slash = plen > 0 && path[plen - 1] == '/';
    for (size_t i = 0; i < n; i++) {
        if (r == 0) {
            _cleanup_free_ char *file = xasprintf("%s%s%s", path, slash ? "" : "/", names[i]);
            r = docs_read_file(docs, file, file, ret_error);
        }
        free(names[i]);
    }
    free(names);
    return r;
}

char *cli_doc_name(const cli_doc *d)
{
    return *d->where ? xasprintf("%s: %s", d->source, d->where) : xstrdup(d->source);
}

void cli_docs_done(cli_docs *docs)
{
    for (size_t i = 0; i < docs->n; i++) {
        json_decref(docs->v[i].obj);
        free(docs->v[i].source);
        free(docs->v[i].where);
    }
    free(docs->v);
    *docs = CLI_DOCS_INIT;
}

/* Whether a message starts with a field path of an object: "spec.vcpus: ...", "kind: ...". */
static bool starts_with_path(const char *m)
{
    static const char *const roots[] = {"apiVersion", "kind", "metadata", "spec", "status"};
    for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
        size_t n = strlen(roots[i]);
        if (strneq(m, roots[i], n) && (m[n] == '.' || m[n] == '[' || m[n] == ':'))
            return true;
    }
    return false;
}

char *cli_doc_error(const cli_doc *d, const char *message)
{
    size_t wn = strlen(d->where);
    if (wn == 0)
        return xasprintf("%s: %s", d->source, message);
    bool join = d->where[wn - 1] == ']' && starts_with_path(message);
    return xasprintf("%s: %s%s%s", d->source, d->where, join ? "." : ": ", message);
}

static int apply_rank(const json_t *obj)
{
    static const char *const order[] = {"Flavor",      "Image", "Network",  "Volume",
                                        "ServerGroup", "Node",  "Instance", "Event"};
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    for (size_t i = 0; kind && i < sizeof(order) / sizeof(order[0]); i++)
        if (strcmp(kind, order[i]) == 0)
            return (int)i;
    return (int)(sizeof(order) / sizeof(order[0]));
}

void cli_docs_sort_for_apply(cli_docs *docs)
{
    /* insertion sort: stable, and manifests are small (capped per file) */
    for (size_t i = 1; i < docs->n; i++) {
        cli_doc d = docs->v[i];
        int r = apply_rank(d.obj);
        size_t j = i;
        while (j > 0 && apply_rank(docs->v[j - 1].obj) > r) {
            docs->v[j] = docs->v[j - 1];
            j--;
        }
        docs->v[j] = d;
    }
}
