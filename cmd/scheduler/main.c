/* stratus-scheduler: flags and signals around pkg/sched's controller. Several may run at once;
 * correctness comes from the apiserver's ledger, not from a leader. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/flags.h"
#include "base/log.h"
#include "sched/scheduler.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: stratus-scheduler [OPTIONS]\n"
        "Places Pending instances on nodes and binds them through the apiserver.\n\n"
        "  --server ADDR           apiserver address (default 127.0.0.1:7443; or STRATUS_SERVER)\n"
        "  --strategy spread|pack  spread load across nodes (default) or fill nodes first\n"
        "  --max-attempts N        placements before an instance is Failed (default 3)\n"
        "  --batch-size N          instances placed per batch (default 200)\n"
        "  --bind-calls N          Bind calls a batch is split into, sent at once while the\n"
        "                          next batch is placed (default 4)\n"
        "  --fencing-margin DUR    a node without a lease this long loses its instances\n"
        "                          (default 40s; keep it above the agents' fencing timeout)\n"
        "  --retry-interval DUR    unschedulable instances retried at least this often (30s)\n"
        "  --name NAME             reported as the source of events\n"
        "  --log-level LEVEL       error, warning, info or debug (default info)\n"
        "  --version, --help\n");
}

static void on_signal(struct ev_loop *loop, ev_io *w, int revents)
{
    struct signalfd_siginfo si;
    if (read(w->fd, &si, sizeof(si)) == sizeof(si))
        log_info("%s: shutting down", strsignal((int)si.ssi_signo));
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    enum {
        O_SERVER = 256,
        O_STRATEGY,
        O_ATTEMPTS,
        O_BATCH,
        O_BIND_CALLS,
        O_FENCE,
        O_RETRY,
        O_NAME,
        O_LOG,
        O_VERSION,
        O_HELP
    };
    static const struct option opts[] = {
        {"server", required_argument, 0, O_SERVER},
        {"strategy", required_argument, 0, O_STRATEGY},
        {"max-attempts", required_argument, 0, O_ATTEMPTS},
        {"batch-size", required_argument, 0, O_BATCH},
        {"bind-calls", required_argument, 0, O_BIND_CALLS},
        {"fencing-margin", required_argument, 0, O_FENCE},
        {"retry-interval", required_argument, 0, O_RETRY},
        {"name", required_argument, 0, O_NAME},
        {"log-level", required_argument, 0, O_LOG},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0},
    };
    log_setup("stratus-scheduler", LOG_LEVEL_INFO);
    scheduler_options o = {.server = getenv("STRATUS_SERVER") ? getenv("STRATUS_SERVER")
                                                              : "127.0.0.1:7443"};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long long n;
        switch (c) {
        case O_SERVER:
            o.server = optarg;
            break;
        case O_STRATEGY:
            if (strcmp(optarg, "spread") != 0 && strcmp(optarg, "pack") != 0) {
                log_error("--strategy: \"%s\" is not spread or pack", optarg);
                return 2;
            }
            o.pack = strcmp(optarg, "pack") == 0;
            break;
        case O_ATTEMPTS:
            if (flag_count("--max-attempts", optarg, 100, &n) < 0)
                return 2;
            o.max_attempts = (unsigned)n;
            break;
        case O_BATCH:
            if (flag_count("--batch-size", optarg, 100000, &n) < 0)
                return 2;
            o.batch_size = (size_t)n;
            break;
        case O_BIND_CALLS:
            if (flag_count("--bind-calls", optarg, 64, &n) < 0)
                return 2;
            o.bind_calls = (size_t)n;
            break;
        case O_FENCE:
            if (flag_duration("--fencing-margin", optarg, &o.fencing_margin) < 0)
                return 2;
            break;
        case O_RETRY:
            if (flag_duration("--retry-interval", optarg, &o.retry_interval) < 0)
                return 2;
            break;
        case O_NAME:
            o.name = optarg;
            break;
        case O_LOG:
            if (flag_log_level("stratus-scheduler", optarg) < 0)
                return 2;
            break;
        case O_VERSION:
            printf("stratus-scheduler %s\n", STRATUS_VERSION);
            return 0;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

    struct ev_loop *loop = EV_DEFAULT;
    scheduler *s = NULL;
    int r = scheduler_new(loop, &o, &s);
    if (r < 0) {
        log_error_errno(r, "cannot start (apiserver %s)", o.server);
        return 1;
    }
    log_info("scheduling through %s (%s)", o.server, o.pack ? "pack" : "spread");
    ev_io sig;
    ev_io_init(&sig, on_signal, sfd, EV_READ);
    ev_io_start(loop, &sig);
    ev_run(loop, 0);
    scheduler_stats st;
    scheduler_stats_read(s, &st);
    log_info("bound %zu, conflicts %zu, unschedulable decisions %zu, failed %zu, rescheduled %zu",
             st.bound, st.conflicts, st.unschedulable, st.failed, st.rescheduled);
    scheduler_free(s);
    close(sfd);
    return 0;
}
