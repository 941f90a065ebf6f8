/* What the node agent will build for one instance, decided before anything is touched: the disks
 * (names in the node's storage pool, sizes, backing images, guest buses and boot order), the NICs
 * (libvirt network, bridge, MAC, address), direct-boot kernel and initrd, the config drive and the
 * console log, and from all that the libvirt domain XML. Pure functions of the objects they are
 * given (instance, flavor, image, networks, volumes) and the node's settings: no I/O, no clock,
 * so they are tested with golden files (tests/unit/agent-data/).
 *
 * Names (docs/agent.md): the domain is "<namespace>.<name>.<uid>"; the instance's own disks are
 * "<uid>-root.qcow2", "<uid>-ephemeral0.qcow2", "<uid>-swap.qcow2", "<uid>-bd-<name>.qcow2" (blank
 * block devices deleted with the instance) and "keep-<uid>-bd-<name>.qcow2" (kept); Volumes are
 * "vol-<namespace>-<name>.<format>"; libvirt networks "stratus-<namespace>-<network>". Everything
 * the agent may delete when an instance goes therefore starts with its uid.
 *
 * Threads: any; nothing is shared. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/backend.h"
#include "api/limits.h"
#include "base/macro.h"

/* How domains are made on this node. Strings are borrowed for the settings' lifetime. */
typedef struct agent_settings {
    const char *node_name;
    const char *domain_type;  /* "test" (test driver), "qemu" (TCG), "kvm" */
    const char *arch;         /* "x86_64" */
    const char *machine;      /* "q35"; NULL: the hypervisor's default */
    const char *emulator;     /* NULL: libvirt's default */
    const char *pool_dir;     /* folder of the backend's storage pool */
    const char *image_dir;    /* the image cache: <image_dir>/<sha256> */
    const char *instance_dir; /* per-instance files: <instance_dir>/<uid>/ */
} agent_settings;

typedef enum plan_disk_role {
    PLAN_DISK_ROOT,
    PLAN_DISK_EPHEMERAL,
    PLAN_DISK_SWAP,
    PLAN_DISK_BLANK,  /* spec.blockDevices[] with sizeGiB */
    PLAN_DISK_VOLUME, /* spec.blockDevices[] with a Volume */
    PLAN_DISK_CONFIG, /* the config drive: a file in the instance folder, not a pool volume */
    _PLAN_DISK_ROLE_MAX,
} plan_disk_role;
const char *plan_disk_role_to_string(plan_disk_role r);

typedef struct plan_disk {
    plan_disk_role role;
    char *name; /* volume name in the pool; NULL for the config drive */
    char *path; /* where the guest's disk is */
    backend_disk_format format;
    uint64_t size_bytes; /* 0: the backing image's virtual size, found when building */
    char *backing_path;  /* NULL: blank */
    backend_disk_format backing_format;
    const char *device;         /* "disk" or "cdrom" */
    const char *bus;            /* "virtio", "sata", "scsi", "ide" */
    char target[8];             /* "vda", "sda", ... */
    int boot_order;             /* 1 is first; 0: not bootable */
    bool delete_on_termination; /* removed with the instance */
    bool readonly;
    char *block_device; /* spec.blockDevices[].name, for messages */
    char *volume;       /* PLAN_DISK_VOLUME: the Volume's name (its status says where it is) */
} plan_disk;

typedef struct plan_nic {
    char *network;  /* the Network's name */
    char *net_name; /* the libvirt network */
    char *bridge;
    char *mac;
    char *ip;
    char *gateway;
    char *netmask;
    int prefix;
    int mtu;
    bool dhcp;   /* the Network's spec.dhcp: a DHCP host entry mac → ip on its network */
    json_t *dns; /* array of strings, may be empty */
} plan_nic;

/* A file the image cache must hold (verified by sha256) before the disks can be made. */
typedef struct plan_fetch {
    char *url;
    char *sha256;
    char *path; /* <image_dir>/<sha256> */
    char *what; /* "image \"cirros\" source", for messages */
} plan_fetch;

#define PLAN_DISKS_MAX   (API_INSTANCE_BLOCK_DEVICES_MAX + 4)
#define PLAN_FETCHES_MAX (3 + API_INSTANCE_BLOCK_DEVICES_MAX)

typedef struct agent_plan {
    char *domain_name;
    char *uid;
    char *namespace_;
    char *name;
    char *hostname;
    int64_t generation;
    int64_t vcpus;
    int64_t memory_mib;
    plan_disk disks[PLAN_DISKS_MAX];
    size_t n_disks;
    plan_nic nics[API_INSTANCE_NETWORKS_MAX];
    size_t n_nics;
    plan_fetch fetches[PLAN_FETCHES_MAX];
    size_t n_fetches;
    char *kernel; /* paths in the image cache, or NULL */
    char *initrd;
    char *cmdline;
    char *files_dir;   /* <instance_dir>/<uid> */
    char *console_log; /* <files_dir>/console.log */
    bool config_drive;
} agent_plan;

/* The objects an instance refers to, looked up by the caller. Borrowed. */
typedef struct agent_refs {
    const json_t *flavor;                                  /* required */
    const json_t *image;                                   /* NULL when spec.image is absent */
    const json_t *networks[API_INSTANCE_NETWORKS_MAX];     /* per spec.networks[i] */
    const json_t *volumes[API_INSTANCE_BLOCK_DEVICES_MAX]; /* per spec.blockDevices[i], or NULL */
    const json_t *volume_images[API_INSTANCE_BLOCK_DEVICES_MAX]; /* a volume's Image, or NULL */
} agent_refs;

#define PLAN_ERROR_MAX 256

/* Plans the instance. Returns 0 and the plan in *ret (free with agent_plan_free); -EINVAL with a
 * message in err (PLAN_ERROR_MAX bytes) when an input is missing or unusable: a missing flavor,
 * network or volume, no address allocated for a NIC, too many disks on one bus. */
int agent_plan_build(const json_t *instance, const agent_refs *refs, const agent_settings *s,
                     agent_plan **ret, char *err);
agent_plan *agent_plan_free(agent_plan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(agent_plan *, agent_plan_free);

/* Removes the config drive from the plan (a hollow node without an ISO tool). */
void agent_plan_drop_config_drive(agent_plan *p);

/* The libvirt domain XML of a plan. Returns 0 and a new string in *ret. */
int agent_domain_xml(const agent_plan *p, const agent_settings *s, char **ret);

/* The domain name of an instance: "<namespace>.<name>.<uid>". New string, or NULL when the
 * object lacks one of them. */
char *agent_domain_name(const json_t *instance);
/* The instance key ("namespace/name") a domain name stands for: 0 and a new string, or -EINVAL
 * when the name is not one of ours. */
int agent_domain_name_to_key(const char *domain_name, char **ret);
/* The libvirt network and bridge names for a Network. New strings. */
char *agent_network_name(const char *ns, const char *network);
char *agent_bridge_name(const char *ns, const char *network);
