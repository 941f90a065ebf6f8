/* Reading manifests for `stratusctl apply -f` and `delete -f`: a file, every *.json file of a
 * folder (in name order), or standard input ("-"). A file holds one JSON object, a List
 * ({"apiVersion":"stratus/v1","kind":"List","items":[...]}), or several of these one after the
 * other. Each object becomes one cli_doc that remembers where it came from, so an error from the
 * apiserver can be reported as "FILE: items[2].spec.vcpus: ...". Only the shape is checked here
 * (JSON syntax with line and column, objects, List items); the apiserver validates the rest and
 * names the field. Not thread-safe; owned by its caller. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#define CLI_MANIFEST_FILE_MAX  (16u << 20) /* bytes of one manifest file (or stdin) */
#define CLI_MANIFEST_FILES_MAX 4096        /* *.json files of one folder */
#define CLI_MANIFEST_DOCS_MAX  10000       /* objects from all inputs of one command */

typedef struct cli_doc {
    json_t *obj;  /* the object (a new reference) */
    char *source; /* the file as the user named it; "<stdin>" for "-" */
    /* Where in the file: "" for a file of one object, "items[2]" in a List, "document 2" (and
     * "document 2: items[0]") when the file holds several documents. */
    char *where;
} cli_doc;

typedef struct cli_docs {
    cli_doc *v;
    size_t n, allocated;
} cli_docs;

#define CLI_DOCS_INIT ((cli_docs){0})

/* Splits `data` (the text of `source`) into documents and appends its objects to docs. Returns 0,
 * or -EINVAL / -E2BIG with a malloc'd message in *ret_error ("FILE: invalid JSON at line 3,
 * column 8: ...", "FILE: items[1]: must be a JSON object"); docs keeps what came before. */
int cli_docs_parse(cli_docs *docs, const char *source, const char *data, size_t len,
                   char **ret_error);
/* Reads path (a file, a folder of *.json files, or "-" for stdin) and appends its objects.
 * Returns 0, or a -errno with a malloc'd message in *ret_error ("FILE: No such file or
 * directory"). */
int cli_docs_read(cli_docs *docs, const char *path, char **ret_error);
/* "FILE" or "FILE: where": how messages name a document. malloc'd. */
char *cli_doc_name(const cli_doc *d);
void cli_docs_done(cli_docs *docs);
/* Orders documents so that what others refer to comes first — Flavor, Image, Network, Volume,
 * ServerGroup, Node, then Instance, then Event — keeping the given order within a kind (Helm's
 * install order, for the same reason): `apply -f dir/` then works whatever the file names. */
void cli_docs_sort_for_apply(cli_docs *docs);

/* Prefixes a message from the apiserver about document d with where it is: a field path
 * ("spec.vcpus: ...") is joined to d->where with "." ("items[2].spec.vcpus: ..."), anything else
 * with ": ". Returns "FILE: [where...]message", malloc'd. */
char *cli_doc_error(const cli_doc *d, const char *message);
