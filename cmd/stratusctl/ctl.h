/* stratusctl's shared state and helpers: the parsed flags, the lazily created API client, the one
 * way errors are worded, List with paging, Get, and waiting on one object through Watch. Each
 * command lives in its own file (apply.c; get.c for get and events; describe.c; delete.c; wait.c
 * for wait, console and version) and returns the process exit code: 0 ok, 1 error, 2 usage.
 * Single-threaded (gRPC's own threads never call back into this code). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "api/kind.h"
#include "cli/wait.h"
#include "rpc/client.h"

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_ERROR = 1,
    CTL_EXIT_USAGE = 2,
};

#define CTL_FILES_MAX      64                   /* -f given on one command line */
#define CTL_LIST_PAGE      500                  /* objects asked for per List page */
#define CTL_LIST_ITEMS_MAX 100000               /* objects one command collects from paged Lists */
#define CTL_WAIT_DEFAULT   (30 * USEC_PER_SEC)  /* wait --timeout */
#define CTL_SETTLE_DEFAULT (300 * USEC_PER_SEC) /* apply --wait, delete --wait */

typedef struct ctl_flags {
    const char *server, *config, *namespace_;
    usec_t request_timeout;
    bool all_namespaces, watch, ignore_not_found, help, version;
    const char *selector, *field_selector, *output, *for_;
    const char *files[CTL_FILES_MAX];
    size_t n_files;
    bool dry_run;
    bool wait;
    usec_t wait_timeout; /* --wait=T, or --timeout */
    bool timeout_set;
    usec_t timeout;
} ctl_flags;

typedef struct ctl {
    const char *command; /* for "Run 'stratusctl COMMAND --help'" */
    ctl_flags f;
    char *server; /* resolved address */
    char timeout_text[32];
    rpc_client *client;
    bool tty; /* stdout is a terminal: progress lines rewrite themselves */
} ctl;

/* Prints "error: <formatted>" on stderr. Returns CTL_EXIT_ERROR. */
int ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a usage error and the hint to --help of the current command. Returns CTL_EXIT_USAGE. */
int ctl_usage_error(const ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text of a failed call for a person: the apiserver's message, or for a server that cannot be
 * reached (or did not answer in time) a sentence that names the address. Into out. */
const char *ctl_status_text(const ctl *c, const rpc_status *st, char *out, size_t size);
/* ctl_error() with ctl_status_text(), prefixed with `what: ` when what is not NULL. */
int ctl_rpc_error(const ctl *c, const rpc_status *st, const char *what);

/* The API client, created on first use. Returns 0, or CTL_EXIT_ERROR after printing why. */
int ctl_connect(ctl *c);

/* Finds a kind by name, plural or alias; prints the error naming the known kinds when unknown. */
const api_kind_info *ctl_kind(const char *name);
/* The namespace commands work in for kind k: -n, else "default"; "" for cluster-scoped kinds. */
const char *ctl_namespace(const ctl *c, const api_kind_info *k);
/* "kind/name" of obj ("instance/web-1"). Into out. */
const char *ctl_ref(const json_t *obj, char *out, size_t size);
/* `instances "default/web-1"`, as the apiserver names objects in its messages. Into out. */
const char *ctl_describe_key(const api_kind_info *k, const char *ns, const char *name, char *out,
                             size_t size);

/* Get. Returns 0 and the object in *ret, or a -errno with st filled. */
int ctl_get(ctl *c, const api_kind_info *k, const char *ns, const char *name, json_t **ret,
            rpc_status *st);
/* List every page (ns "" with all_ns for every namespace). Returns 0 with a new JSON array in
 * *ret_items and the list's resourceVersion in *ret_rv (malloc'd; may be NULL), or a -errno with
 * st filled. */
int ctl_list(ctl *c, const api_kind_info *k, const char *ns, bool all_ns, const char *label_sel,
             const char *field_sel, json_t **ret_items, char **ret_rv, rpc_status *st);

/* Called with each state of the object waited for (NULL: it does not exist), on every change and,
 * on a terminal, once a second. */
typedef void (*ctl_progress_fn)(void *userdata, const json_t *obj);

/* Waits until the object k ns/name satisfies w, or until `deadline` (monotonic). Lists it, then
 * watches from the list's revision (relisting when told to, re-watching when the stream ends).
 * Returns 0 when met; -ETIMEDOUT; -ENOENT when it does not exist (or was deleted) and w is not
 * deletion; another -errno with st filled. *ret_last (optional) gets the last state seen (NULL
 * when absent). */
int ctl_wait_object(ctl *c, const api_kind_info *k, const char *ns, const char *name,
                    const cli_wait_for *w, usec_t deadline, ctl_progress_fn progress,
                    void *userdata, json_t **ret_last, rpc_status *st);

/* Prints obj as pretty JSON (4 spaces, sorted keys) on stdout. */
void ctl_print_json(const json_t *obj);
/* A List document of items: {"apiVersion":"stratus/v1","items":[...],"kind":"List"}. */
json_t *ctl_list_document(json_t *items);

/* Splits "kind/name" arguments or "KIND NAME..." into kinds and names. args[0..n). With
 * allow_kind_only, "KIND" alone gives *ret_n 0 and the kind in *ret_kind. Returns 0, or an exit
 * code after printing the error. ret_kinds/ret_names have room for n entries. */
int ctl_targets(const ctl *c, char **args, size_t n, bool allow_kind_only,
                const api_kind_info **ret_kind, const api_kind_info **ret_kinds,
                const char **ret_names, size_t *ret_n);

int ctl_cmd_apply(ctl *c, char **args, size_t n);
int ctl_cmd_get(ctl *c, char **args, size_t n);
int ctl_cmd_events(ctl *c, char **args, size_t n);
int ctl_cmd_describe(ctl *c, char **args, size_t n);
int ctl_cmd_delete(ctl *c, char **args, size_t n);
int ctl_cmd_wait(ctl *c, char **args, size_t n);
int ctl_cmd_console(ctl *c, char **args, size_t n);
int ctl_cmd_version(ctl *c, char **args, size_t n);
