/* stratusctl: the command line for Stratus, in the manner of kubectl. This file parses the
 * command line (global flags and the command's own, anywhere on the line), resolves the
 * apiserver address (--server, $STRATUS_SERVER, the config file, the default) and hands over to
 * the command. What is not I/O lives in pkg/cli; docs/cli.md describes every command. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "cli/config.h"
#include "ctl.h"

/* Every flag; a command accepts the global ones plus those in its mask. */
typedef enum flag {
    FLAG_SERVER,
    FLAG_CONFIG,
    FLAG_REQUEST_TIMEOUT,
    FLAG_NAMESPACE,
    FLAG_HELP,
    FLAG_VERSION,
    FLAG_ALL_NAMESPACES,
    FLAG_SELECTOR,
    FLAG_FIELD_SELECTOR,
    FLAG_OUTPUT,
    FLAG_WATCH,
    FLAG_FILENAME,
    FLAG_DRY_RUN,
    FLAG_WAIT,
    FLAG_FOR,
    FLAG_TIMEOUT,
    FLAG_IGNORE_NOT_FOUND,
    _FLAG_MAX,
} flag;

#define F(x)         (1u << FLAG_##x)
#define FLAGS_GLOBAL (F(SERVER) | F(CONFIG) | F(REQUEST_TIMEOUT) | F(NAMESPACE) | F(HELP))

static const struct option options[] = {
    {"server", required_argument, NULL, 256 + FLAG_SERVER},
    {"config", required_argument, NULL, 256 + FLAG_CONFIG},
    {"request-timeout", required_argument, NULL, 256 + FLAG_REQUEST_TIMEOUT},
    {"namespace", required_argument, NULL, 'n'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 256 + FLAG_VERSION},
    {"all-namespaces", no_argument, NULL, 'A'},
    {"selector", required_argument, NULL, 'l'},
    {"field-selector", required_argument, NULL, 256 + FLAG_FIELD_SELECTOR},
    {"output", required_argument, NULL, 'o'},
    {"watch", no_argument, NULL, 'w'},
    {"filename", required_argument, NULL, 'f'},
    {"dry-run", optional_argument, NULL, 256 + FLAG_DRY_RUN},
    {"wait", optional_argument, NULL, 256 + FLAG_WAIT},
    {"for", required_argument, NULL, 256 + FLAG_FOR},
    {"timeout", required_argument, NULL, 256 + FLAG_TIMEOUT},
    {"ignore-not-found", no_argument, NULL, 256 + FLAG_IGNORE_NOT_FOUND},
    {NULL, 0, NULL, 0},
};
#define SHORT_OPTIONS ":n:hAl:o:wf:"

/* The flag of a getopt_long return value, or -1. */
static int flag_of(int v)
{
    switch (v) {
    case 'n':
        return FLAG_NAMESPACE;
    case 'h':
        return FLAG_HELP;
    case 'A':
        return FLAG_ALL_NAMESPACES;
    case 'l':
        return FLAG_SELECTOR;
    case 'o':
        return FLAG_OUTPUT;
    case 'w':
        return FLAG_WATCH;
    case 'f':
        return FLAG_FILENAME;
    default:
        return v >= 256 && v < 256 + _FLAG_MAX ? v - 256 : -1;
    }
}

/* "--output" / "-o, --output" for messages. */
static const char *flag_name(int f)
{
    for (const struct option *o = options; o->name; o++)
        if (flag_of(o->val) == f)
            return o->name;
    return "?";
}

typedef struct command {
    const char *name;
    int (*run)(ctl *c, char **args, size_t n);
    unsigned flags;
    const char *summary;
    const char *help;
} command;

static const command commands[] = {
    {"apply", ctl_cmd_apply, F(FILENAME) | F(DRY_RUN) | F(WAIT),
     "Create or update objects from JSON manifests",
     "Usage:\n"
     "  stratusctl apply -f FILE|DIR|- [-f ...] [--dry-run=server] [--wait[=TIMEOUT]]\n"
     "\n"
     "A file holds one object, a List, or several objects one after the other; a folder\n"
     "applies each of its *.json files in name order; \"-\" reads standard input. Each object\n"
     "prints KIND/NAME created, configured or unchanged. The first object the apiserver\n"
     "rejects stops the command (exit 1); the objects before it stay applied.\n"
     "\n"
     "Flags:\n"
     "  -f, --filename FILE      a manifest file, a folder, or - for standard input (repeatable)\n"
     "      --dry-run[=server]   the apiserver checks everything and writes nothing\n"
     "      --wait[=TIMEOUT]     wait until each applied instance is Running or Failed,\n"
     "                           showing its progress (default timeout 5m)\n"
     "\n"
     "Examples:\n"
     "  stratusctl apply -f manifests/flavors.json\n"
     "  stratusctl apply -f manifests/ --dry-run=server\n"
     "  stratusctl apply -f web.json --wait=2m\n"},
    {"get", ctl_cmd_get, F(ALL_NAMESPACES) | F(SELECTOR) | F(FIELD_SELECTOR) | F(OUTPUT) | F(WATCH),
     "List objects of a kind, or show some by name",
     "Usage:\n"
     "  stratusctl get KIND [NAME...] [flags]\n"
     "  stratusctl get KIND/NAME... [flags]\n"
     "\n"
     "Flags:\n"
     "  -A, --all-namespaces        every namespace (adds a NAMESPACE column)\n"
     "  -l, --selector SEL          label selector: app=web,tier!=db,zone in (a,b),!legacy\n"
     "      --field-selector SEL    field selector: spec.nodeName=node-1,status.phase!=Running\n"
     "  -o, --output FORMAT         wide (more columns), json, or name (KIND/NAME)\n"
     "  -w, --watch                 after the list, print a row for every change\n"
     "\n"
     "Examples:\n"
     "  stratusctl get instances\n"
     "  stratusctl get inst web-1 -o json\n"
     "  stratusctl get nodes -o wide\n"
     "  stratusctl get instances -A -l app=web -w\n"},
    {"describe", ctl_cmd_describe, F(SELECTOR),
     "Show objects in detail, with conditions, build timeline and events",
     "Usage:\n"
     "  stratusctl describe KIND NAME...\n"
     "  stratusctl describe KIND/NAME...\n"
     "  stratusctl describe KIND [-l SEL]\n"
     "\n"
     "Shows metadata, the spec, the status (for instances: phase, conditions, addresses,\n"
     "failed attempts and the build timeline with the duration of each step; for nodes:\n"
     "capacity, what is allocated and node info) and the object's recent events.\n"
     "\n"
     "Flags:\n"
     "  -l, --selector SEL   with a kind and no name: every object matching the selector\n"
     "\n"
     "Examples:\n"
     "  stratusctl describe instance web-1\n"
     "  stratusctl describe node/node-1\n"},
    {"delete", ctl_cmd_delete, F(FILENAME) | F(SELECTOR) | F(WAIT) | F(IGNORE_NOT_FOUND),
     "Delete objects by name, by selector or from manifests",
     "Usage:\n"
     "  stratusctl delete KIND NAME... [flags]\n"
     "  stratusctl delete KIND/NAME... [flags]\n"
     "  stratusctl delete KIND -l SEL [flags]\n"
     "  stratusctl delete -f FILE|DIR|- [flags]\n"
     "\n"
     "An object with finalizers (a bound instance) is marked for deletion and goes once its\n"
     "node agent has cleaned up; --wait waits for that.\n"
     "\n"
     "Flags:\n"
     "  -f, --filename FILE       delete the objects of these manifests (repeatable)\n"
     "  -l, --selector SEL        every object of KIND matching the label selector\n"
     "      --ignore-not-found    an object that does not exist is not an error\n"
     "      --wait[=TIMEOUT]      wait until each object is gone (default timeout 5m)\n"
     "\n"
     "Examples:\n"
     "  stratusctl delete instance web-1 --wait\n"
     "  stratusctl delete -f manifests/flavors.json\n"},
    {"wait", ctl_cmd_wait, F(FOR) | F(TIMEOUT),
     "Wait until objects reach a condition or phase, or are deleted",
     "Usage:\n"
     "  stratusctl wait KIND/NAME... --for=CONDITION [--timeout=DURATION]\n"
     "  stratusctl wait KIND NAME... --for=CONDITION [--timeout=DURATION]\n"
     "\n"
     "Exits 0 when every object got there, 1 on timeout or error.\n"
     "\n"
     "Flags:\n"
     "      --for CONDITION      condition=TYPE[=STATUS] (STATUS is True unless given),\n"
     "                           phase=PHASE, or delete\n"
     "      --timeout DURATION   give up after this long (default 30s): 90s, 5m, 1h30m\n"
     "\n"
     "Examples:\n"
     "  stratusctl wait instance/web-1 --for=condition=Ready --timeout=60s\n"
     "  stratusctl wait instance/web-1 --for=phase=Running\n"
     "  stratusctl wait instance/web-1 --for=delete\n"},
    {"events", ctl_cmd_events, F(ALL_NAMESPACES) | F(FOR) | F(WATCH) | F(OUTPUT),
     "List events, oldest first",
     "Usage:\n"
     "  stratusctl events [-n NS | -A] [--for KIND/NAME] [-w] [-o wide|json|name]\n"
     "\n"
     "Events of a namespace (or every namespace), sorted by when they were last seen. Events\n"
     "about cluster-scoped objects (nodes, flavors, images) are in the default namespace.\n"
     "\n"
     "Flags:\n"
     "  -A, --all-namespaces   every namespace\n"
     "      --for KIND/NAME    only the events about this object\n"
     "  -w, --watch            after the list, print every new or changed event\n"
     "  -o, --output FORMAT    wide, json or name\n"
     "\n"
     "Examples:\n"
     "  stratusctl events\n"
     "  stratusctl events --for instance/web-1 -w\n"},
    {"console", ctl_cmd_console, 0, "Print the serial console log of an instance",
     "Usage:\n"
     "  stratusctl console instance/NAME\n"
     "  stratusctl console NAME\n"
     "\n"
     "Prints the instance's serial console log as its node agent last reported it\n"
     "(status.consoleLog). Exits 1 when no log has been reported yet.\n"},
    {"version", ctl_cmd_version, 0, "Print the versions of stratusctl and the apiserver",
     "Usage:\n"
     "  stratusctl version\n"},
};

static const command *command_find(const char *name)
{
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        if (streq(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void print_help(FILE *f)
{
    fputs("stratusctl controls a Stratus cluster: it applies JSON manifests and shows what the\n"
          "cluster made of them.\n"
          "\n"
          "Usage:\n"
          "  stratusctl COMMAND [ARGS] [FLAGS]\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Global flags (any command):\n"
          "  -n, --namespace NS          namespace of namespaced kinds (default: default)\n"
          "      --server HOST:PORT      the apiserver; else $STRATUS_SERVER, else \"server\" in\n"
          "                              the config file, else " CLI_DEFAULT_SERVER "\n"
          "      --config FILE           the config file (default: ~/.stratus/config)\n"
          "      --request-timeout DUR   longest wait for one call to the apiserver (default 10s)\n"
          "  -h, --help                  help for stratusctl or for a command\n"
          "      --version               print the version of stratusctl\n"
          "\n"
          "Kinds:",
          f);
    for (api_kind k = 0; k < _API_KIND_MAX; k++) {
        const api_kind_info *info = api_kind_get(k);
        fprintf(f, "%s %s", k % 4 == 0 ? "\n " : "", info->plural);
        for (size_t i = 0; info->aliases && info->aliases[i]; i++)
            fprintf(f, "%s%s", i ? ", " : " (", info->aliases[i]);
        fprintf(f, "%s%s", info->aliases && info->aliases[0] ? ")" : "",
                k + 1 < _API_KIND_MAX ? "," : "\n");
    }
    fputs("\n"
          "Exit codes: 0 ok, 1 error, 2 usage error.\n"
          "Run 'stratusctl COMMAND --help' for the flags and examples of a command.\n",
          f);
}

static void print_command_help(const command *cmd)
{
    printf("%s.\n\n%s", cmd->summary, cmd->help);
    printf("\nGlobal flags: -n/--namespace, --server, --config, --request-timeout "
           "(see stratusctl --help).\n");
}

/* Whether a global flag takes its value as the next argument ("--server X", "-n X"). */
static bool takes_separate_value(const char *arg)
{
    static const char *const with_value[] = {"--server", "--config", "--request-timeout",
                                             "--namespace", "-n"};
    for (size_t i = 0; i < ELEMENTSOF(with_value); i++)
        if (streq(arg, with_value[i]))
            return true;
    return false;
}

static int parse_duration_flag(ctl *c, const char *name, const char *text, usec_t *ret)
{
    usec_t d;
    if (duration_parse(text, &d) < 0 || d == 0)
        return ctl_usage_error(c, "--%s: \"%s\" is not a duration like 30s, 5m or 1h30m", name,
                               text);
    *ret = d;
    return 0;
}

/* Parses argv (without the command) into c->f and the positional args. Returns 0 or an exit
 * code. */
static int parse_flags(ctl *c, const command *cmd, int argc, char **argv, char **args,
                       size_t *n_args)
{
    ctl_flags *f = &c->f;
    unsigned allowed = FLAGS_GLOBAL | (cmd ? cmd->flags : F(VERSION));
    opterr = 0;
    optind = 1;
    for (;;) {
        int v = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL);
        if (v == -1)
            break;
        if (v == '?') {
            if (optopt && optopt < 256)
                return ctl_usage_error(c, "unknown flag: -%c", optopt);
            return ctl_usage_error(c, "unknown flag: %s", argv[optind - 1]);
        }
        if (v == ':')
            return ctl_usage_error(c, "flag --%s needs a value", flag_name(flag_of(optopt)));
        int fl = flag_of(v);
        if (fl < 0 || !(allowed & (1u << fl)))
            return ctl_usage_error(c, "unknown flag: --%s%s%s", fl < 0 ? "?" : flag_name(fl),
                                   cmd ? " for " : "", cmd ? cmd->name : "");
        int r = 0;
        switch (fl) {
        case FLAG_SERVER:
            f->server = optarg;
            break;
        case FLAG_CONFIG:
            f->config = optarg;
            break;
        case FLAG_REQUEST_TIMEOUT:
            r = parse_duration_flag(c, "request-timeout", optarg, &f->request_timeout);
            break;
        case FLAG_NAMESPACE:
            if (!*optarg)
                return ctl_usage_error(c, "--namespace: must not be empty");
            f->namespace_ = optarg;
            break;
        case FLAG_HELP:
            f->help = true;
            break;
        case FLAG_VERSION:
            f->version = true;
            break;
        case FLAG_ALL_NAMESPACES:
            f->all_namespaces = true;
            break;
        case FLAG_SELECTOR:
            f->selector = optarg;
            break;
        case FLAG_FIELD_SELECTOR:
            f->field_selector = optarg;
            break;
        case FLAG_OUTPUT:
            if (!streq(optarg, "wide") && !streq(optarg, "json") && !streq(optarg, "name"))
                return ctl_usage_error(c, "--output: \"%s\" is not one of wide, json, name",
                                       optarg);
            f->output = optarg;
            break;
        case FLAG_WATCH:
            f->watch = true;
            break;
        case FLAG_FILENAME:
            if (f->n_files >= CTL_FILES_MAX)
                return ctl_usage_error(c, "-f: at most %d files (give a folder instead)",
                                       CTL_FILES_MAX);
            f->files[f->n_files++] = optarg;
            break;
        case FLAG_DRY_RUN:
            if (optarg && streq(optarg, "none"))
                f->dry_run = false;
            else if (!optarg || streq(optarg, "server"))
                f->dry_run = true;
            else
                return ctl_usage_error(c,
                                       "--dry-run: \"%s\" is not server or none (the apiserver "
                                       "does the dry run; there is no client-side one)",
                                       optarg);
            break;
        case FLAG_WAIT:
            f->wait = true;
            if (optarg)
                r = parse_duration_flag(c, "wait", optarg, &f->wait_timeout);
            break;
        case FLAG_FOR:
            f->for_ = optarg;
            break;
        case FLAG_TIMEOUT:
            r = parse_duration_flag(c, "timeout", optarg, &f->timeout);
            f->timeout_set = r == 0;
            break;
        case FLAG_IGNORE_NOT_FOUND:
            f->ignore_not_found = true;
            break;
        }
        if (r)
            return r;
    }
    *n_args = 0;
    for (int i = optind; i < argc; i++)
        args[(*n_args)++] = argv[i];
    return 0;
}

static int resolve_server(ctl *c)
{
    _cleanup_free_ char *path =
        c->f.config ? xstrdup(c->f.config) : cli_config_default_path(getenv("HOME"));
    _cleanup_free_ char *err = NULL;
    int r = cli_config_server(c->f.server, getenv("STRATUS_SERVER"), path, c->f.config != NULL,
                              &c->server, &err);
    if (r < 0)
        return ctl_error("%s", err);
    return 0;
}

int main(int argc, char **argv)
{
    /* gRPC core would print its own connection errors on stderr; we report them once, as
     * "error: cannot reach the apiserver ...". GRPC_VERBOSITY set by the user still wins. */
    setenv("GRPC_VERBOSITY", "NONE", 0);

    ctl c = {.f.request_timeout = 10 * USEC_PER_SEC, .tty = isatty(STDOUT_FILENO)};
    /* Find the command: the first argument that is neither a flag nor a global flag's value. */
    int cmd_index = -1;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--"))
            break;
        if (argv[i][0] == '-' && argv[i][1]) {
            if (takes_separate_value(argv[i]))
                i++;
            continue;
        }
        cmd_index = i;
        break;
    }
    const command *cmd = NULL;
    if (cmd_index > 0) {
        cmd = command_find(argv[cmd_index]);
        if (!cmd)
            return ctl_usage_error(NULL, "unknown command \"%s\"", argv[cmd_index]);
        c.command = cmd->name;
    }
    char **rest = xnew(char *, (size_t)argc + 1);
    int n_rest = 0;
    for (int i = 0; i < argc; i++)
        if (i != cmd_index)
            rest[n_rest++] = argv[i];
    char **args = xnew(char *, (size_t)argc + 1);
    size_t n_args = 0;
    int r = parse_flags(&c, cmd, n_rest, rest, args, &n_args);
    if (r)
        goto out;
    if (c.f.help) {
        if (cmd)
            print_command_help(cmd);
        else
            print_help(stdout);
        goto out;
    }
    if (!cmd) {
        if (c.f.version) {
            printf("stratusctl %s\n", STRATUS_VERSION);
            goto out;
        }
        r = n_args ? ctl_usage_error(NULL, "unknown command \"%s\"", args[0])
                   : ctl_usage_error(NULL, "no command given");
        goto out;
    }
    snprintf(c.timeout_text, sizeof(c.timeout_text), "%llus",
             (unsigned long long)(c.f.request_timeout / USEC_PER_SEC));
    if (c.f.request_timeout % USEC_PER_SEC)
        snprintf(c.timeout_text, sizeof(c.timeout_text), "%llums",
                 (unsigned long long)(c.f.request_timeout / USEC_PER_MSEC));
    r = resolve_server(&c);
    if (r)
        goto out;
    r = cmd->run(&c, args, n_args);
out:
    fflush(stdout);
    c.client = rpc_client_free(c.client);
    free(c.server);
    free(args);
    free(rest);
    return r;
}
