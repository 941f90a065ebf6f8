/* Every size a client controls in the Stratus object model, in one place: documents, strings,
 * lists, maps, selectors and error texts. Validation enforces these before anything else sees the
 * data; docs/api.md lists them for users. Change a cap here and nowhere else. */
#pragma once

#define API_VERSION    "stratus/v1"
#define API_KEY_PREFIX "/stratus/v1/"

/* Documents. etcd's default request limit is 1.5 MiB; one object stays well below it. */
#define API_OBJECT_SIZE_MAX (1024 * 1024) /* bytes of one JSON document (object or List) */
#define API_LIST_ITEMS_MAX  256           /* objects in one kind: List manifest */

/* Names and metadata (Kubernetes rules). */
#define API_DNS_LABEL_MAX        63
#define API_DNS_SUBDOMAIN_MAX    253
#define API_LABEL_NAME_MAX       63           /* name part of a label key, and a label value */
#define API_LABELS_MAX           64           /* labels on one object */
#define API_ANNOTATIONS_SIZE_MAX (256 * 1024) /* sum of annotation key and value bytes */
#define API_ANNOTATIONS_MAX      1024
#define API_FINALIZERS_MAX       32
#define API_UID_MAX              64
#define API_RESOURCE_VERSION_MAX 20 /* decimal digits of an int64 */

/* Free text. */
#define API_SHORT_STRING_MAX 64    /* enum-like words: steps, condition types, node info fields */
#define API_REASON_MAX       128   /* CamelCase reasons on conditions, attempts and events */
#define API_MESSAGE_MAX      1024  /* human messages on conditions, attempts and events */
#define API_CONSOLE_LOG_MAX  16384 /* the tail of an instance's serial console in its status */
#define API_URL_MAX          2048
#define API_CMDLINE_MAX      4096

/* Instance. */
#define API_INSTANCE_NETWORKS_MAX      16
#define API_INSTANCE_BLOCK_DEVICES_MAX 16
#define API_USER_DATA_MAX              65536 /* bytes, as Nova's 64 KiB */
#define API_SSH_KEYS_MAX               16
#define API_SSH_KEY_MAX                8192 /* bytes of one OpenSSH public key line */
#define API_SERVER_METADATA_MAX        128  /* Nova's metadata_items quota default */
#define API_SERVER_METADATA_VALUE_MAX  255
#define API_TOLERATIONS_MAX            32

/* Flavor, Image, Network, Volume, Node. */
#define API_VCPUS_MAX            1024
#define API_MEMORY_MIB_MIN       16
#define API_MEMORY_MIB_MAX       (16LL * 1024 * 1024) /* 16 TiB */
#define API_DISK_GIB_MAX         65536                /* 64 TiB */
#define API_SWAP_MIB_MAX         (1024LL * 1024)      /* 1 TiB */
#define API_EXTRA_SPECS_MAX      64
#define API_PROPERTIES_MAX       64
#define API_FREE_KEY_MAX         255 /* keys of free-form maps: metadata, extraSpecs, properties */
#define API_PROPERTY_VALUE_MAX   255
#define API_BRIDGE_NAME_MAX      15 /* Linux IFNAMSIZ - 1 */
#define API_DNS_SERVERS_MAX      3  /* glibc MAXNS */
#define API_MTU_MIN              576
#define API_MTU_MAX              9216
#define API_NETWORK_PREFIX_MIN   8
#define API_NETWORK_PREFIX_MAX   30
#define API_TAINTS_MAX           32
#define API_NODE_VCPUS_MAX       65536
#define API_NODE_MEMORY_MIB_MAX  (1LL << 30) /* 1 PiB */
#define API_NODE_DISK_GIB_MAX    (1LL << 30) /* 1 EiB */
#define API_ALLOCATION_RATIO_MIN 0.1
#define API_ALLOCATION_RATIO_MAX 100.0
#define API_CONDITIONS_MAX       16
#define API_ADDRESSES_MAX        16
#define API_ATTEMPTS_MAX         32
#define API_TIMELINE_MAX         64
#define API_GROUP_MEMBERS_MAX    1024

/* Selectors. */
#define API_SELECTOR_MAX              4096 /* bytes of one label or field selector */
#define API_SELECTOR_REQUIREMENTS_MAX 64
#define API_SELECTOR_VALUES_MAX       64 /* values in one in/notin set */

/* Errors: what an api_error can hold; longer paths and values are shortened with "...". */
#define API_ERROR_PATH_MAX    512
#define API_ERROR_MESSAGE_MAX 768
#define API_ERROR_VALUE_SHOWN 64 /* bytes of a bad value quoted in a message */
