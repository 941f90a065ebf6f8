/* stratus-apiserver: flags and signals around pkg/apiserver. SIGINT/SIGTERM shut down gracefully
 * (open calls get a grace period, watches are ended with UNAVAILABLE). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"
#include "base/alloc.h"
#include "base/flags.h"
#include "base/log.h"

static void usage(FILE *f)
{
    fprintf(
        f, "Usage: stratus-apiserver [OPTIONS]\n"
           "Serves the Stratus API (gRPC stratus.v1.Stratus) over objects stored in etcd.\n\n"
           "  --listen ADDR            address to serve on (default 127.0.0.1:7443; port 0 = any)\n"
           "  --etcd URL[,URL...]      etcd client URLs (default http://127.0.0.1:2379)\n"
           "  --etcd-ca FILE           CA bundle for https etcd endpoints\n"
           "  --etcd-cert FILE         client certificate for etcd\n"
           "  --etcd-key FILE          client key for etcd\n"
           "  --etcd-engine ENGINE     grpc (etcd's native API) or gateway (its JSON gateway);\n"
           "                           default: $STRATUS_STORE_ENGINE, else grpc\n"
           "  --workers N              threads serving unary calls (default 8)\n"
           "  --watch-cache N          events kept for watchers to resume from (default 20000)\n"
           "  --max-watchers N         open watches (default 10000)\n"
           "  --recent-cache-mib N     last values kept to start writes from (default 16),\n"
           "                           and up to 4x that of them parsed\n"
           "  --bookmark-interval DUR  how often watchers get bookmarks (default 5s)\n"
           "  --compact-interval DUR   etcd history older than this is compacted (default 5m)\n"
           "  --port-file FILE         write the port served on to FILE once listening\n"
           "  --log-level LEVEL        error, warning, info or debug (default info)\n"
           "  --version, --help\n");
}

static int parse_size(const char *flag, const char *v, long long max, size_t *ret)
{
    long long n;
    if (flag_count(flag, v, max, &n) < 0)
        return -1;
    *ret = (size_t)n;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_ETCD,
        O_CA,
        O_CERT,
        O_KEY,
        O_ENGINE,
        O_WORKERS,
        O_WC,
        O_MAXW,
        O_RECENT,
        O_BM,
        O_COMPACT,
        O_PORTFILE,
        O_LOG,
        O_VERSION,
        O_HELP
    };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"etcd", required_argument, 0, O_ETCD},
        {"etcd-ca", required_argument, 0, O_CA},
        {"etcd-cert", required_argument, 0, O_CERT},
        {"etcd-key", required_argument, 0, O_KEY},
        {"etcd-engine", required_argument, 0, O_ENGINE},
        {"workers", required_argument, 0, O_WORKERS},
        {"watch-cache", required_argument, 0, O_WC},
        {"max-watchers", required_argument, 0, O_MAXW},
        {"recent-cache-mib", required_argument, 0, O_RECENT},
        {"bookmark-interval", required_argument, 0, O_BM},
        {"compact-interval", required_argument, 0, O_COMPACT},
        {"port-file", required_argument, 0, O_PORTFILE},
        {"log-level", required_argument, 0, O_LOG},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0},
    };
    log_setup("stratus-apiserver", LOG_LEVEL_INFO);
    apiserver_options o = {.listen = "127.0.0.1:7443"};
    _cleanup_free_ char *etcd = xstrdup("http://127.0.0.1:2379");
    const char *port_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            o.listen = optarg;
            break;
        case O_ETCD:
            free(etcd);
            etcd = xstrdup(optarg);
            break;
        case O_CA:
            o.etcd.ca_file = optarg;
            break;
        case O_CERT:
            o.etcd.cert_file = optarg;
            break;
        case O_KEY:
            o.etcd.key_file = optarg;
            break;
        case O_ENGINE:
            if (store_engine_from_string(optarg, &o.etcd.engine) < 0)
                return log_error("--etcd-engine: \"%s\" is not grpc or gateway", optarg), 2;
            break;
        case O_WORKERS:
            if (parse_size("--workers", optarg, 256, &o.workers) < 0)
                return 2;
            break;
        case O_WC:
            if (parse_size("--watch-cache", optarg, 10000000, &o.watch_cache) < 0)
                return 2;
            break;
        case O_RECENT:
            if (parse_size("--recent-cache-mib", optarg, 4096, &o.recent_bytes) < 0)
                return 2;
            o.recent_bytes <<= 20;
            break;
        case O_MAXW:
            if (parse_size("--max-watchers", optarg, 1000000, &o.watchers_max) < 0)
                return 2;
            break;
        case O_BM:
            if (flag_duration("--bookmark-interval", optarg, &o.bookmark_interval) < 0)
                return 2;
            break;
        case O_COMPACT:
            if (flag_duration("--compact-interval", optarg, &o.compact_interval) < 0)
                return 2;
            break;
        case O_PORTFILE:
            port_file = optarg;
            break;
        case O_LOG:
            if (flag_log_level("stratus-apiserver", optarg) < 0)
                return 2;
            break;
        case O_VERSION:
            printf("stratus-apiserver %s\n", STRATUS_VERSION);
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
    for (char *save = NULL, *e = strtok_r(etcd, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        if (o.etcd.n_endpoints == STORE_ENDPOINTS_MAX) {
            log_error("--etcd: at most %d endpoints", STORE_ENDPOINTS_MAX);
            return 2;
        }
        o.etcd.endpoints[o.etcd.n_endpoints++] = e;
    }

    /* gRPC's threads inherit this mask; the signals are taken with sigwait below. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    apiserver *s = NULL;
    int r = apiserver_new(&o, &s);
    if (r == -EINVAL)
        return log_error("--etcd: not a list of http:// or https:// URLs"), 2;
    if (r < 0) {
        log_error_errno(r, "cannot start: %s",
                        r == -EADDRINUSE ? "cannot listen on --listen (in use or not an address)"
                                         : "etcd cannot be reached at --etcd");
        return 1;
    }
    log_info("serving on port %d, etcd %s", apiserver_port(s), o.etcd.endpoints[0]);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (f) {
            fprintf(f, "%d\n", apiserver_port(s));
            fclose(f);
        }
    }
    int sig;
    sigwait(&mask, &sig);
    log_info("%s: shutting down", strsignal(sig));
    apiserver_free(s, 2 * USEC_PER_SEC);
    return 0;
}
