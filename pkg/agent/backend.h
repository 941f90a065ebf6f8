/* The node agent's hypervisor backends: one table of functions per kind of host, in the manner
 * of libvirt's own driver tables. The agent only ever calls the backend_* wrappers below; an
 * implementation that leaves a function NULL does not support it, and every wrapper reports that
 * one way: -EOPNOTSUPP with a message naming the backend and the operation.
 *
 * Implementations:
 *   - backend-libvirt.c: libvirt, for both `test:///<node.xml>` (hollow nodes: libvirt's
 *     in-memory test driver, with a generated node.xml holding the node's capacity, a storage pool
 *     and nothing else) and `qemu:///system` (real guests, TCG). The URI decides.
 *   - the unit tests' fake (tests/unit/test-agent-fake.c), which can fail the Nth call.
 *
 * What a backend is not: it knows nothing of Instances, Flavors or the apiserver. It names
 * domains, disks and networks with the strings the agent gives it (docs/agent.md has the names).
 *
 * Errors: 0 or -errno. -ENOENT always means "no such domain/disk/network"; everything else is a
 * failure whose text backend_last_error() gives, on the thread that made the call. The library
 * does not log.
 *
 * Threads: a backend is safe to call from several threads at once (libvirt connections are),
 * reconnect included; backend_free and backend_events_subscribe belong to whoever owns it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/macro.h"

typedef struct backend backend;

/* Caps on what a backend reports and accepts. */
#define BACKEND_UUID_MAX  37  /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */
#define BACKEND_NAME_MAX  256 /* domain, disk and network names */
#define BACKEND_ERROR_MAX 512 /* backend_last_error() text */
#define BACKEND_XML_MAX   (1 << 20)
#define BACKEND_LIST_MAX  100000 /* domains or disks listed at once */

typedef enum backend_domain_state {
    BACKEND_DOMAIN_RUNNING,  /* running (libvirt: running, blocked) */
    BACKEND_DOMAIN_PAUSED,   /* paused or suspended: not modelled by Stratus, reported */
    BACKEND_DOMAIN_STOPPING, /* a graceful shutdown is in progress */
    BACKEND_DOMAIN_SHUTOFF,  /* defined and off */
    BACKEND_DOMAIN_CRASHED,  /* crashed (or off because it crashed) */
    BACKEND_DOMAIN_OTHER,
    _BACKEND_DOMAIN_STATE_MAX,
} backend_domain_state;

const char *backend_domain_state_to_string(backend_domain_state s);

/* What the host offers, as the backend sees it. Strings are "" when unknown. */
typedef struct backend_host_info {
    int64_t vcpus;
    int64_t memory_mib;
    int64_t disk_gib; /* the storage pool's capacity */
    char hostname[64];
    char arch[32];
    char cpu_model[64];
    char hypervisor[32];
    char hypervisor_version[32];
    char libvirt_version[32];
} backend_host_info;

/* One domain as listed, with the instance it was made for (from its <metadata>; the strings are
 * NULL for domains Stratus did not make). Owned by the array, freed by backend_domains_free. */
typedef struct backend_domain {
    char *name;
    char uuid[BACKEND_UUID_MAX];
    backend_domain_state state;
    char *uid;        /* metadata: instance uid */
    char *namespace_; /* metadata: instance namespace */
    char *instance;   /* metadata: instance name */
    char *node;       /* metadata: the node identity that made it; NULL from older agents */
    int64_t generation;
} backend_domain;
void backend_domains_free(backend_domain *d, size_t n);

typedef enum backend_disk_format {
    BACKEND_DISK_QCOW2,
    BACKEND_DISK_RAW,
    _BACKEND_DISK_FORMAT_MAX,
} backend_disk_format;
const char *backend_disk_format_to_string(backend_disk_format f);

/* A disk in the node's storage pool. */
typedef struct backend_disk_request {
    const char *name; /* the volume name, a file name in the pool */
    backend_disk_format format;
    uint64_t size_bytes;      /* virtual size; 0 with a backing file: the backing file's size */
    const char *backing_path; /* NULL: a blank disk; else a qcow2 overlay on this file */
    backend_disk_format backing_format;
} backend_disk_request;

/* A bridged L2 network, isolated (no forwarding): the host side holds the gateway address. */
typedef struct backend_network_request {
    const char *name;    /* libvirt network name */
    const char *bridge;  /* Linux bridge name, at most 15 characters */
    const char *gateway; /* dotted quad, or NULL for no host address */
    int prefix;          /* 8..30 */
    int mtu;             /* 0: default */
    bool dhcp; /* serve DHCP on the gateway address, static entries only (network_host_add) */
} backend_network_request;

/* Called on the backend's event thread when a domain changed state (started, stopped, crashed,
 * defined, undefined, ...), with its name; with NULL when the connection to the hypervisor was
 * lost (backend_connected() is false from then on, until backend_reconnect() succeeds). It must
 * not block: hand the name over and return. */
typedef void (*backend_event_fn)(const char *domain_name, void *userdata);

/* Work that runs beside a domain start (domain_start_with), on another thread: it may call the
 * backend, and keeps its own error text (backend_last_error() is per thread). Returns 0 or
 * -errno. */
typedef int (*backend_beside_fn)(void *userdata);

typedef struct backend_config {
    const char *uri;       /* "test:///path/node.xml" or "qemu:///system" */
    const char *pool_name; /* storage pool holding every disk; NULL → "stratus" */
    const char *pool_dir;  /* its folder (qemu: created when missing) */
} backend_config;

typedef struct backend_ops {
    const char *name; /* "libvirt", "fake" */
    int (*open)(const backend_config *cfg, backend **ret);
    void (*close)(backend *b);

    int (*host_info)(backend *b, backend_host_info *ret);

    /* Defines (or redefines) a persistent domain; its UUID goes to ret_uuid. */
    int (*domain_define)(backend *b, const char *xml, char ret_uuid[BACKEND_UUID_MAX]);
    /* Starts a defined domain; 0 when it already runs. */
    int (*domain_start)(backend *b, const char *name);
    /* Starts a defined domain as domain_start does, and runs fn(userdata) on another thread
     * meanwhile: once the start has gone far enough that fn's calls cannot hold it up, or once
     * the start has returned. Returns when both are done: the start's 0 or -errno (with
     * backend_last_error()), and fn's result in *ret_fn; fn runs even when the start fails.
     * libvirt: fn begins when the domain has left shut-off (qemu runs, its NICs' network ports
     * exist), because a network update holds the network's lock throughout and allocating a
     * port takes it. NULL: the wrapper starts the domain, then calls fn on the calling thread. */
    int (*domain_start_with)(backend *b, const char *name, backend_beside_fn fn, void *userdata,
                             int *ret_fn);
    /* Asks the guest to power off (ACPI); 0 when it is not running. Does not wait. */
    int (*domain_shutdown)(backend *b, const char *name);
    /* Pulls the plug; 0 when it is not running. */
    int (*domain_destroy)(backend *b, const char *name);
    /* Removes the definition (the domain must be off); 0 when absent. */
    int (*domain_undefine)(backend *b, const char *name);
    /* State and UUID of a domain; -ENOENT when there is none by that name. */
    int (*domain_state)(backend *b, const char *name, backend_domain_state *ret_state,
                        char ret_uuid[BACKEND_UUID_MAX]);
    /* Every domain on the host, with its Stratus metadata. */
    int (*domain_list)(backend *b, backend_domain **ret, size_t *ret_n);

    /* Creates a disk in the pool; 0 (and the path) also when it exists already. */
    int (*disk_create)(backend *b, const backend_disk_request *d, char **ret_path);
    /* Deletes a disk from the pool; 0 when absent. */
    int (*disk_delete)(backend *b, const char *name);
    /* Names of every disk in the pool. */
    int (*disk_list)(backend *b, char ***ret_names, size_t *ret_n);

    /* Makes sure the network exists and is active; 0 when it does. */
    int (*network_ensure)(backend *b, const backend_network_request *n);
    /* Makes sure the network's DHCP server gives ip to mac (a static host entry, live and
     * persistent). An entry for the same mac or the same ip with another partner is replaced:
     * IPAM has given the address to this NIC, so such an entry is stale. 0 when it is there. */
    int (*network_host_add)(backend *b, const char *network, const char *mac, const char *ip);
    /* Removes the entry mac → ip; 0 when it (or the network) is absent. */
    int (*network_host_remove)(backend *b, const char *network, const char *mac, const char *ip);

    /* Where the domain's serial console is logged (from its definition); -ENOENT when none. */
    int (*console_log_path)(backend *b, const char *name, char **ret);

    /* Calls fn on every domain lifecycle event (and on the loss of the connection) until the
     * backend is freed, across reconnects. Once per backend: -EALREADY after that. */
    int (*events_subscribe)(backend *b, backend_event_fn fn, void *userdata);
    /* Stops calling it; when this returns, no call is running or will run. */
    int (*events_unsubscribe)(backend *b);

    /* Whether the connection to the hypervisor is up. Cheap (no round trip): any thread, often.
     * NULL: always. */
    bool (*connected)(backend *b);
    /* Opens a new connection when the current one is dead (0 at once when it is alive), with the
     * event subscription carried over; calls in flight on the old one fail. -errno (and
     * backend_last_error()) while the hypervisor cannot be reached. Any thread. */
    int (*reconnect)(backend *b);
} backend_ops;

/* Every implementation's struct starts with this. */
struct backend {
    const backend_ops *ops;
};

extern const backend_ops backend_libvirt_ops;

/* Opens the backend the URI names (only libvirt URIs today). Returns 0 and the backend in *ret,
 * or -errno with backend_last_error() set. Any thread. */
int backend_open(const backend_config *cfg, backend **ret);
/* Opens with an explicit table (the unit tests' fake). */
int backend_open_with(const backend_ops *ops, const backend_config *cfg, backend **ret);
/* Closes and frees; accepts NULL, returns NULL. No call may be running on it. */
backend *backend_free(backend *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(backend *, backend_free);

const char *backend_name(const backend *b);

/* The wrappers: -EOPNOTSUPP when the backend has no such function, else what it returns. */
int backend_host_info_get(backend *b, backend_host_info *ret);
int backend_domain_define(backend *b, const char *xml, char ret_uuid[BACKEND_UUID_MAX]);
int backend_domain_start(backend *b, const char *name);
int backend_domain_start_with(backend *b, const char *name, backend_beside_fn fn, void *userdata,
                              int *ret_fn);
int backend_domain_shutdown(backend *b, const char *name);
int backend_domain_destroy(backend *b, const char *name);
int backend_domain_undefine(backend *b, const char *name);
int backend_domain_state_get(backend *b, const char *name, backend_domain_state *ret_state,
                             char ret_uuid[BACKEND_UUID_MAX]);
int backend_domain_list(backend *b, backend_domain **ret, size_t *ret_n);
int backend_disk_create(backend *b, const backend_disk_request *d, char **ret_path);
int backend_disk_delete(backend *b, const char *name);
int backend_disk_list(backend *b, char ***ret_names, size_t *ret_n);
int backend_network_ensure(backend *b, const backend_network_request *n);
int backend_network_host_add(backend *b, const char *network, const char *mac, const char *ip);
int backend_network_host_remove(backend *b, const char *network, const char *mac, const char *ip);
int backend_console_log_path(backend *b, const char *name, char **ret);
int backend_events_subscribe(backend *b, backend_event_fn fn, void *userdata);
int backend_events_unsubscribe(backend *b);
/* True for backends without a connection to lose (no `connected` function). */
bool backend_connected(backend *b);
int backend_reconnect(backend *b);

/* Frees a string array from backend_disk_list. Accepts NULL. */
void backend_names_free(char **names, size_t n);

/* The text of the last failed backend call on this thread ("" when none). */
const char *backend_last_error(void);
/* For implementations: sets it (printf-style) and returns error, a -errno. */
int backend_set_error(int error, const char *fmt, ...) _printf_(2, 3);

/* Writes a libvirt test-driver node description with this capacity and a storage pool named
 * pool_name at pool_dir (the test driver keeps volumes in memory: nothing is written there).
 * Returns 0 or -errno. */
int backend_test_node_xml_write(const char *path, int64_t vcpus, int64_t memory_mib,
                                int64_t disk_gib, const char *pool_name, const char *pool_dir);
