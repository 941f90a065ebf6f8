/* stratus-node-agent: flags, logging and signals around pkg/agent. One process runs one node
 * (libvirt qemu:///system, or a test:/// hollow node) or many hollow nodes for scale tests.
 * SIGINT/SIGTERM stop it: reconciles in progress finish, domains are left running (a restarted
 * agent adopts them). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/steps.h"
#include "base/alloc.h"
#include "base/flags.h"
#include "base/log.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: stratus-node-agent [--server ADDR] [OPTIONS]\n"
        "Registers this host as a Node and converges its libvirt domains to the instances\n"
        "bound to it.\n\n"
        "  --server ADDR             the Stratus apiserver (default 127.0.0.1:7443, or\n"
        "                            STRATUS_SERVER)\n"
        "  --node-name NAME          this node (default: the host name)\n"
        "  --backend URI             qemu:///system (default), or \"test\" for a hollow node\n"
        "                            on libvirt's test driver\n"
        "  --hollow-nodes N          run N hollow nodes (test driver) in this process\n"
        "  --name-prefix P           hollow node names: P0, P1, ... (default hollow-)\n"
        "  --state-dir DIR           images, disks and instance files (default\n"
        "                            /var/lib/stratus/agent)\n"
        "  --pool NAME               libvirt storage pool of the disks (default stratus);\n"
        "                            agents sharing one libvirtd need one each\n"
        "  --zone ZONE               label topology.stratus.io/zone\n"
        "  --vcpus N, --memory-mib N, --disk-gib N\n"
        "                            capacity (default: what the backend reports; a hollow\n"
        "                            node defaults to 8 vcpus, 16384 MiB, 100 GiB)\n"
        "  --cpu-allocation-ratio R, --memory-allocation-ratio R, --disk-allocation-ratio R\n"
        "                            set the Node's spec.allocationRatios\n"
        "  --domain-type TYPE        qemu (TCG, default for qemu://), kvm, or test\n"
        "  --machine TYPE            machine type for qemu/kvm (default q35)\n"
        "  --workers N               reconcile threads (default 4; 4 per hollow node, at most 32)\n"
        "  --lease-ttl DUR           node lease TTL, renewed every third of it (default 10s)\n"
        "  --fencing-timeout DUR     stop all domains after this long without a lease\n"
        "                            (default 3 x lease TTL)\n"
        "  --resync-interval DUR     reconcile every instance this often (default 30s)\n"
        "  --orphan-grace DUR        remove orphan domains and disks after (default 60s)\n"
        "  --shutdown-timeout DUR    graceful shutdown before destroy (default 30s)\n"
        "  --build-retries N         failed builds before giving an instance back (default 3)\n"
        "  --no-console-log-status   do not copy the serial console's tail into status.consoleLog\n"
        "  --log-level LEVEL         error, warning, info or debug (default info)\n"
        "  --version, --help\n");
}

static int parse_ratio(const char *flag, const char *v, double *ret)
{
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d >= 0.1 && d <= 100.0)) {
        log_error("%s: \"%s\" is not a ratio in 0.1..100", flag, v);
        return -1;
    }
    *ret = d;
    return 0;
}

static void on_log(void *userdata, agent_log_level level, const char *node, const char *message)
{
    static const log_level map[] = {LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO,
                                    LOG_LEVEL_DEBUG};
    log_full(map[level], 0, "%s: %s", node ? node : "-", message);
}

int main(int argc, char **argv)
{
    enum {
        O_API = 256,
        O_NAME,
        O_BACKEND,
        O_HOLLOW,
        O_PREFIX,
        O_STATE,
        O_POOL,
        O_ZONE,
        O_VCPUS,
        O_MEM,
        O_DISK,
        O_RCPU,
        O_RMEM,
        O_RDISK,
        O_DTYPE,
        O_MACHINE,
        O_WORKERS,
        O_TTL,
        O_FENCE,
        O_RESYNC,
        O_ORPHAN,
        O_SHUTDOWN,
        O_RETRIES,
        O_CONSOLE,
        O_LOG,
        O_VERSION,
        O_HELP
    };
    static const struct option opts[] = {
        {"server", required_argument, 0, O_API},
        {"apiserver", required_argument, 0, O_API},
        {"node-name", required_argument, 0, O_NAME},
        {"backend", required_argument, 0, O_BACKEND},
        {"hollow-nodes", required_argument, 0, O_HOLLOW},
        {"name-prefix", required_argument, 0, O_PREFIX},
        {"state-dir", required_argument, 0, O_STATE},
        {"pool", required_argument, 0, O_POOL},
        {"zone", required_argument, 0, O_ZONE},
        {"vcpus", required_argument, 0, O_VCPUS},
        {"memory-mib", required_argument, 0, O_MEM},
        {"disk-gib", required_argument, 0, O_DISK},
        {"cpu-allocation-ratio", required_argument, 0, O_RCPU},
        {"memory-allocation-ratio", required_argument, 0, O_RMEM},
        {"disk-allocation-ratio", required_argument, 0, O_RDISK},
        {"domain-type", required_argument, 0, O_DTYPE},
        {"machine", required_argument, 0, O_MACHINE},
        {"workers", required_argument, 0, O_WORKERS},
        {"lease-ttl", required_argument, 0, O_TTL},
        {"fencing-timeout", required_argument, 0, O_FENCE},
        {"resync-interval", required_argument, 0, O_RESYNC},
        {"orphan-grace", required_argument, 0, O_ORPHAN},
        {"shutdown-timeout", required_argument, 0, O_SHUTDOWN},
        {"build-retries", required_argument, 0, O_RETRIES},
        {"no-console-log-status", no_argument, 0, O_CONSOLE},
        {"log-level", required_argument, 0, O_LOG},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0},
    };
    log_setup("stratus-node-agent", LOG_LEVEL_INFO);
    const char *env = getenv("STRATUS_SERVER");
    agent_options o = {.console_log_status = true,
                       .apiserver = env && *env ? env : "127.0.0.1:7443",
                       .state_dir = "/var/lib/stratus/agent",
                       .log = on_log};
    long long n;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_API:
            o.apiserver = optarg;
            break;
        case O_NAME:
            o.node_name = optarg;
            break;
        case O_BACKEND:
            o.uri = optarg;
            break;
        case O_HOLLOW:
            if (flag_count("--hollow-nodes", optarg, AGENT_HOLLOW_NODES_MAX, &n) < 0)
                return 2;
            o.hollow_nodes = (unsigned)n;
            break;
        case O_PREFIX:
            o.name_prefix = optarg;
            break;
        case O_STATE:
            o.state_dir = optarg;
            break;
        case O_POOL:
            if (!*optarg || strpbrk(optarg, "/<>&'\" ")) {
                log_error("--pool: \"%s\" is not a storage pool name", optarg);
                return 2;
            }
            o.pool_name = optarg;
            break;
        case O_ZONE:
            o.zone = optarg;
            break;
        case O_VCPUS:
            if (flag_count("--vcpus", optarg, 65536, &n) < 0)
                return 2;
            o.vcpus = n;
            break;
        case O_MEM:
            if (flag_count("--memory-mib", optarg, 1LL << 30, &n) < 0)
                return 2;
            o.memory_mib = n;
            break;
        case O_DISK:
            if (flag_count("--disk-gib", optarg, 1LL << 30, &n) < 0)
                return 2;
            o.disk_gib = n;
            break;
        case O_RCPU:
            if (parse_ratio("--cpu-allocation-ratio", optarg, &o.cpu_ratio) < 0)
                return 2;
            break;
        case O_RMEM:
            if (parse_ratio("--memory-allocation-ratio", optarg, &o.memory_ratio) < 0)
                return 2;
            break;
        case O_RDISK:
            if (parse_ratio("--disk-allocation-ratio", optarg, &o.disk_ratio) < 0)
                return 2;
            break;
        case O_DTYPE:
            if (!streq(optarg, "qemu") && !streq(optarg, "kvm") && !streq(optarg, "test")) {
                log_error("--domain-type: \"%s\" is not qemu, kvm or test", optarg);
                return 2;
            }
            o.domain_type = optarg;
            break;
        case O_MACHINE:
            o.machine = optarg;
            break;
        case O_WORKERS:
            if (flag_count("--workers", optarg, 256, &n) < 0)
                return 2;
            o.workers = (unsigned)n;
            break;
        case O_TTL:
            if (flag_duration("--lease-ttl", optarg, &o.lease_ttl) < 0)
                return 2;
            if (o.lease_ttl < USEC_PER_SEC || o.lease_ttl > 300 * USEC_PER_SEC) {
                log_error("--lease-ttl: must be between 1s and 300s");
                return 2;
            }
            break;
        case O_FENCE:
            if (flag_duration("--fencing-timeout", optarg, &o.fencing_timeout) < 0)
                return 2;
            break;
        case O_RESYNC:
            if (flag_duration("--resync-interval", optarg, &o.resync_interval) < 0)
                return 2;
            break;
        case O_ORPHAN:
            if (flag_duration("--orphan-grace", optarg, &o.orphan_grace) < 0)
                return 2;
            break;
        case O_SHUTDOWN:
            if (flag_duration("--shutdown-timeout", optarg, &o.shutdown_timeout) < 0)
                return 2;
            break;
        case O_RETRIES:
            if (flag_count("--build-retries", optarg, 100, &n) < 0)
                return 2;
            o.build_retries = (unsigned)n;
            break;
        case O_CONSOLE:
            o.console_log_status = false;
            break;
        case O_LOG:
            if (flag_log_level("stratus-node-agent", optarg) < 0)
                return 2;
            break;
        case O_VERSION:
            printf("stratus-node-agent %s\n", STRATUS_VERSION);
            return 0;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    /* Tests only (docs/agent.md): stop reconciles at a build step so a SIGKILL lands there. */
    const char *pause = getenv("STRATUS_AGENT_PAUSE_AFTER");
    if (pause && *pause) {
        if (!agent_pause_point_valid(pause)) {
            log_error("STRATUS_AGENT_PAUSE_AFTER: \"%s\" is not one of: %s", pause,
                      AGENT_PAUSE_POINTS);
            return 2;
        }
        log_warning("STRATUS_AGENT_PAUSE_AFTER=%s: reconciles stop there until SIGKILL", pause);
        o.debug_pause_after = pause;
    }
    if (optind < argc) {
        log_error("unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    if (o.hollow_nodes) {
        if (o.uri && !streq(o.uri, "test")) {
            log_error("--hollow-nodes runs on the test driver: drop --backend or say \"test\"");
            return 2;
        }
        o.uri = "test";
    } else if (!o.uri)
        o.uri = "qemu:///system";
    char host[256];
    if (!o.hollow_nodes && !o.node_name) {
        if (gethostname(host, sizeof(host)) < 0) {
            log_error("--node-name is required (no host name)");
            return 2;
        }
        host[sizeof(host) - 1] = 0;
        o.node_name = host;
    }

    /* The agent's threads (and gRPC's, libvirt's) inherit this mask; signals come to sigwait. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    agent *a = NULL;
    int r = agent_new(&o, &a);
    if (r < 0) {
        log_error_errno(r, "cannot start: %s", backend_last_error());
        return 1;
    }
    log_info("running %zu node(s) on %s, apiserver %s", agent_node_count(a), o.uri, o.apiserver);
    int sig;
    sigwait(&mask, &sig);
    log_info("%s: stopping", strsignal(sig));
    agent_free(a);
    return 0;
}
