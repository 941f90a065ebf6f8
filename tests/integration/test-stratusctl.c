/* Golden tests of the real stratusctl binary against a real apiserver and etcd (the in-process
 * apiserver fixture). Each case runs build/bin/stratusctl with posix_spawn (STRATUS_SERVER set,
 * HOME pointing at an empty folder so no user config leaks in), collects stdout, stderr and the
 * exit code, and compares them with tests/integration/stratusctl-golden/<case>.txt, which lists
 * each command line followed by its output:
 *
 *     $ stratusctl get flavors
 *     --- stdout
 *     NAME ...
 *     --- stderr
 *     --- exit 0
 *
 * Volatile parts are normalized before the comparison (normalize() below), in command lines
 * and outputs: uids → <uid>, RFC 3339 timestamps → <time>, resource versions → <rv>, loopback
 * ports → 127.0.0.1:<port>, gRPC's text after "cannot reach the apiserver at ADDRESS:" →
 * <grpc detail>, and ages ("5s", "3m10s", "4d") → <age> with the spaces after them adjusted so
 * that table columns keep their width. Help texts and usage errors are compared as they are.
 * STRATUS_REGENERATE=1 rewrites the golden files (review the diff). The cases run in order and
 * build on each other's objects, as a user would: apply, get, describe, watch and wait (the test
 * moves instances through their phases with UpdateStatus and Bind, since there is no scheduler or
 * agent here), delete. Bad inputs (missing file, invalid JSON, unknown kind, usage errors, an
 * unreachable or silent server, the config file) are checked too; for servers that cannot be
 * reached the test asserts the message and that the command returned, not a wall-clock bound. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/object.h"
#include "apiserver-fixture.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "check.h"

extern char **environ;

#define RUN_TIMEOUT   (60 * USEC_PER_SEC) /* any one stratusctl run; a hang fails the case */
#define WAIT_FOR_TEXT (30 * USEC_PER_SEC) /* streaming output to show a line */
#define OUTPUT_MAX    (4u << 20)

static apiserver_fixture *fx;
static char tmp[512];      /* scratch folder: manifests, homes, outputs */
static char ctl_bin[1024]; /* build/bin/stratusctl */
static const char *src_dir;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        abort();
    }
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    buf b = BUF_INIT(OUTPUT_MAX);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b, NULL);
}

static void remove_tree(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
    free(cmd);
}

static void cleanup(void)
{
    if (tmp[0] && !getenv("STRATUS_TEST_KEEP"))
        remove_tree(tmp);
}

static void setup(void)
{
    if (fx)
        return;
    src_dir = getenv("STRATUS_SOURCE_DIR");
    const char *build = getenv("STRATUS_BUILD_DIR");
    if (!src_dir || !build) {
        fprintf(stderr, "STRATUS_SOURCE_DIR and STRATUS_BUILD_DIR must be set (CTest sets them)\n");
        abort();
    }
    snprintf(ctl_bin, sizeof(ctl_bin), "%s/bin/stratusctl", build);
    if (access(ctl_bin, X_OK) < 0) {
        fprintf(stderr, "%s: not built\n", ctl_bin);
        abort();
    }
    snprintf(tmp, sizeof(tmp), "%s/stratusctl-test-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        abort();
    }
    atexit(cleanup);
    char path[1024];
    snprintf(path, sizeof(path), "%s/home", tmp);
    mkdir(path, 0755);
    apiserver_options o = {.watch_cache = 1000, .bookmark_interval = USEC_PER_SEC};
    fx = apiserver_fixture_start(&o);
}

/* ---- running stratusctl ---- */

typedef struct ctl_env {
    const char *cwd;    /* NULL: the source tree (so manifests/... paths work) */
    const char *server; /* STRATUS_SERVER; NULL: the fixture; "": unset */
    const char *home;   /* HOME; NULL: an empty folder */
    const char *input;  /* standard input; NULL: /dev/null */
} ctl_env;

typedef struct proc {
    pid_t pid;
    int out_fd; /* streaming: the read end of stdout */
    char out_path[600], err_path[600];
    buf out;
    char *cmdline;
} proc;

typedef struct result {
    char *out, *err;
    int code; /* exit status, or 128 + signal */
    char *cmdline;
    usec_t elapsed;
} result;

static void result_done(result *r)
{
    free(r->out);
    free(r->err);
    free(r->cmdline);
}

static char *cmdline_of(const char *const *args)
{
    buf b = BUF_INIT(0);
    buf_append_str(&b, "stratusctl");
    for (size_t i = 0; args[i]; i++) {
        bool plain = *args[i] != '\0';
        for (const char *p = args[i]; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,",
                        *p))
                plain = false;
        buf_printf(&b, plain ? " %s" : " '%s'", args[i]);
    }
    return buf_steal(&b, NULL);
}

static pid_t live[16];

static void kill_live(void)
{
    for (size_t i = 0; i < ELEMENTSOF(live); i++)
        if (live[i] > 0)
            kill(live[i], SIGKILL);
}

static proc *ctl_start(const ctl_env *e, const char *const *args, bool stream)
{
    static int seq;
    static bool registered;
    if (!registered) {
        atexit(kill_live);
        registered = true;
    }
    proc *p = xnew(proc, 1);
    p->out = BUF_INIT(OUTPUT_MAX);
    p->out_fd = -1;
    p->cmdline = cmdline_of(args);
    seq++;
    snprintf(p->out_path, sizeof(p->out_path), "%s/run-%d.out", tmp, seq);
    snprintf(p->err_path, sizeof(p->err_path), "%s/run-%d.err", tmp, seq);
    char in_path[600] = "/dev/null";
    if (e->input) {
        snprintf(in_path, sizeof(in_path), "%s/run-%d.in", tmp, seq);
        write_file(in_path, e->input);
    }

    char *argv[64];
    size_t n = 0;
    argv[n++] = ctl_bin;
    for (size_t i = 0; args[i] && n < ELEMENTSOF(argv) - 1; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;

    char home[600];
    snprintf(home, sizeof(home), "%s/home", tmp);
    char *envp[16];
    size_t ne = 0;
    envp[ne++] = xstrdup("PATH=/usr/bin:/bin");
    envp[ne++] = xasprintf("HOME=%s", e->home ? e->home : home);
    const char *server = e->server ? e->server : fx->target;
    if (*server)
        envp[ne++] = xasprintf("STRATUS_SERVER=%s", server);
    static const char *const passed[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TMPDIR"};
    for (size_t i = 0; i < ELEMENTSOF(passed); i++)
        if (getenv(passed[i]))
            envp[ne++] = xasprintf("%s=%s", passed[i], getenv(passed[i]));
    envp[ne] = NULL;

    int pipe_fds[2] = {-1, -1};
    if (stream && pipe2(pipe_fds, O_CLOEXEC) < 0) {
        perror("pipe2");
        abort();
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, in_path, O_RDONLY, 0);
    if (stream)
        posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], STDOUT_FILENO);
    else
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, p->out_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, p->err_path, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addchdir_np(&fa, e->cwd ? e->cwd : src_dir);
    int r = posix_spawn(&p->pid, ctl_bin, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    for (size_t i = 0; i < ne; i++)
        free(envp[i]);
    if (r != 0) {
        fprintf(stderr, "posix_spawn %s: %s\n", ctl_bin, strerror(r));
        abort();
    }
    for (size_t i = 0; i < ELEMENTSOF(live); i++)
        if (live[i] <= 0) {
            live[i] = p->pid;
            break;
        }
    if (stream) {
        close(pipe_fds[1]);
        p->out_fd = pipe_fds[0];
        fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    }
    return p;
}

/* Reads what the streaming child wrote, waiting up to `timeout` for something. */
static void proc_drain(proc *p, usec_t timeout)
{
    if (p->out_fd < 0)
        return;
    struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(timeout / USEC_PER_MSEC)) <= 0)
        return;
    char chunk[4096];
    ssize_t n;
    while ((n = read(p->out_fd, chunk, sizeof(chunk))) > 0)
        buf_append(&p->out, chunk, (size_t)n);
    if (n == 0) {
        close(p->out_fd);
        p->out_fd = -1;
    }
}

/* Waits until the streaming output contains `text`. */
static bool proc_wait_text(proc *p, const char *text)
{
    usec_t deadline = now_monotonic() + WAIT_FOR_TEXT;
    while (!(p->out.data && strstr(p->out.data, text))) {
        if (now_monotonic() > deadline || p->out_fd < 0) {
            fprintf(stderr, "no \"%s\" in the output of %s; got:\n%s\n", text, p->cmdline,
                    p->out.data ? p->out.data : "");
            return false;
        }
        proc_drain(p, 100 * USEC_PER_MSEC);
    }
    return true;
}

/* Waits for the child to exit (after SIGTERM when `stop`), and collects its output. */
static result proc_finish(proc *p, bool stop)
{
    result res = {.cmdline = p->cmdline};
    usec_t start = now_monotonic();
    if (stop)
        kill(p->pid, SIGTERM);
    int status = 0;
    for (;;) {
        proc_drain(p, 10 * USEC_PER_MSEC);
        pid_t w = waitpid(p->pid, &status, WNOHANG);
        if (w == p->pid)
            break;
        if (now_monotonic() - start > RUN_TIMEOUT) {
            fprintf(stderr, "%s did not finish in time: killed\n", p->cmdline);
            kill(p->pid, SIGKILL);
        }
        if (p->out_fd < 0)
            usleep(10 * 1000);
    }
    while (p->out_fd >= 0)
        proc_drain(p, 100 * USEC_PER_MSEC);
    for (size_t i = 0; i < ELEMENTSOF(live); i++)
        if (live[i] == p->pid)
            live[i] = 0;
    res.elapsed = now_monotonic() - start;
    res.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    res.out = p->out.len || p->out.data ? buf_steal(&p->out, NULL) : read_file(p->out_path);
    if (!res.out)
        res.out = xstrdup("");
    res.err = read_file(p->err_path);
    if (!res.err)
        res.err = xstrdup("");
    buf_done(&p->out);
    free(p);
    return res;
}

static result ctl_run_env(const ctl_env *e, const char *const *args)
{
    return proc_finish(ctl_start(e, args, false), false);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define RUN(...)  ctl_run_env(&(ctl_env){0}, ARGS(__VA_ARGS__))

/* ---- golden files ---- */

/* Replaces every match of `pattern` (POSIX ERE) in s; "\1" in `with` is the first group. */
static char *regex_replace(const char *s, const char *pattern, const char *with)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE) != 0)
        abort();
    buf b = BUF_INIT(0);
    regmatch_t m[2];
    int flags = 0;
    while (*s && regexec(&re, s, 2, m, flags) == 0) {
        buf_append(&b, s, (size_t)m[0].rm_so);
        for (const char *w = with; *w; w++) {
            if (w[0] == '\\' && w[1] == '1' && m[1].rm_so >= 0) {
                buf_append(&b, s + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
                w++;
            } else {
                buf_append(&b, w, 1);
            }
        }
        if (m[0].rm_eo == 0) { /* an empty match: move on one byte */
            buf_append(&b, s, 1);
            s++;
        } else {
            s += m[0].rm_eo;
        }
        flags = REG_NOTBOL;
    }
    buf_append_str(&b, s);
    regfree(&re);
    return buf_steal(&b, NULL);
}

/* Ages: a word that is an age ("0s", "3m10s", "4d", "<invalid>"), maybe in parentheses, becomes
 * <age>; the spaces after it shrink or grow so the next column starts where it did. */
static char *normalize_ages(const char *s)
{
    regex_t re;
    if (regcomp(&re, "^\\(?([0-9]+[smhdy]([0-9]+[smh])?|<invalid>)\\)?$", REG_EXTENDED) != 0)
        abort();
    buf b = BUF_INIT(0);
    while (*s) {
        if (*s == ' ' || *s == '\n') {
            buf_append(&b, s++, 1);
            continue;
        }
        size_t len = strcspn(s, " \n");
        char *word = xstrndup(s, len);
        size_t spaces = strspn(s + len, " ");
        bool more = s[len + spaces] && s[len + spaces] != '\n';
        if (regexec(&re, word, 0, NULL, 0) == 0) {
            bool open = word[0] == '(', close = word[len - 1] == ')';
            char *repl = xasprintf("%s<age>%s", open ? "(" : "", close ? ")" : "");
            buf_append_str(&b, repl);
            if (more) {
                size_t want = len + spaces > strlen(repl) ? len + spaces - strlen(repl) : 1;
                for (size_t i = 0; i < MAX(want, (size_t)1); i++)
                    buf_append(&b, " ", 1);
            } else {
                buf_append(&b, s + len, spaces);
            }
            free(repl);
        } else {
            buf_append(&b, s, len + spaces);
        }
        free(word);
        s += len + spaces;
    }
    regfree(&re);
    return buf_steal(&b, NULL);
}

static char *normalize(const char *text)
{
    static const struct {
        const char *pattern, *with;
    } rules[] = {
        {"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uid>"},
        {"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z", "<time>"},
        {"\"resourceVersion\": \"[0-9]+\"", "\"resourceVersion\": \"<rv>\""},
        {"(Resource Version: +)[0-9]+", "\\1<rv>"},
        {"127\\.0\\.0\\.1:[0-9]+", "127.0.0.1:<port>"},
        /* what gRPC says about a refused connection varies with its version */
        {"(cannot reach the apiserver at [^ ]+): .*", "\\1: <grpc detail>"},
    };
    char *s = xstrdup(text);
    for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
        char *n = regex_replace(s, rules[i].pattern, rules[i].with);
        free(s);
        s = n;
    }
    char *n = normalize_ages(s);
    free(s);
    return n;
}

typedef struct golden {
    const char *name;
    bool raw; /* compare as is (help texts) */
    buf text;
} golden;

static void golden_add(golden *g, const result *r)
{
    _cleanup_free_ char *out = g->raw ? xstrdup(r->out) : normalize(r->out);
    _cleanup_free_ char *err = g->raw ? xstrdup(r->err) : normalize(r->err);
    _cleanup_free_ char *cmdline = g->raw ? xstrdup(r->cmdline) : normalize(r->cmdline);
    if (g->text.len)
        buf_append_str(&g->text, "\n");
    buf_printf(&g->text, "$ %s\n--- stdout\n%s%s--- stderr\n%s%s--- exit %d\n", cmdline, out,
               *out && out[strlen(out) - 1] != '\n' ? "\n" : "", err,
               *err && err[strlen(err) - 1] != '\n' ? "\n" : "", r->code);
}

/* Runs a command, records it in g and returns its exit code. */
static int golden_run(golden *g, const ctl_env *e, const char *const *args)
{
    result r = ctl_run_env(e ? e : &(ctl_env){0}, args);
    golden_add(g, &r);
    int code = r.code;
    result_done(&r);
    return code;
}

#define G(g, ...)        golden_run((g), NULL, ARGS(__VA_ARGS__))
#define G_ENV(g, e, ...) golden_run((g), (e), ARGS(__VA_ARGS__))

static void golden_check(golden *g)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/integration/stratusctl-golden/%s.txt", src_dir, g->name);
    const char *text = g->text.data ? g->text.data : "";
    if (getenv("STRATUS_REGENERATE") && streq(getenv("STRATUS_REGENERATE"), "1")) {
        write_file(path, text);
        fprintf(stderr, "wrote %s\n", path);
        buf_done(&g->text);
        return;
    }
    _cleanup_free_ char *want = read_file(path);
    if (want && streq(want, text)) {
        buf_done(&g->text);
        return;
    }
    char actual[1200];
    snprintf(actual, sizeof(actual), "%s/%s.actual", tmp, g->name);
    write_file(actual, text);
    /* Show the first line that differs. */
    const char *a = want ? want : "", *b = text;
    int line = 1;
    while (*a && *a == *b) {
        if (*a == '\n')
            line++;
        a++, b++;
    }
    _cleanup_free_ char *la = xstrndup(a, strcspn(a, "\n"));
    _cleanup_free_ char *lb = xstrndup(b, strcspn(b, "\n"));
    fprintf(stderr,
            "golden %s differs at line %d:\n  want: ...%s\n  got:  ...%s\n(actual output in %s; "
            "STRATUS_TEST_KEEP=1 keeps it, STRATUS_REGENERATE=1 rewrites the golden file)\n",
            path, line, la, lb, actual);
    buf_done(&g->text);
    if (!getenv("STRATUS_TEST_KEEP"))
        fprintf(stderr, "%s\n", text);
    CHECK(!"golden file differs");
}

/* ---- the cluster's state, moved by the test ---- */

static void update_status(const char *kind, const char *name, const char *status_json,
                          const char *remove_finalizer)
{
    /* Addresses belong to the IP ledger's answer at creation: keep them across updates. */
    json_t *cur = NULL;
    rpc_status st;
    CHECK_OK(fx_get(fx, kind, streq(kind, "Instance") ? "default" : "", name, &cur, &st));
    json_t *status = json_loads(status_json ? status_json : "{}", 0, NULL);
    CHECK(status);
    json_t *addresses = api_json_lookup(cur, "status.addresses");
    if (addresses && streq(kind, "Instance") && !json_object_get(status, "addresses"))
        json_object_set(status, "addresses", addresses);
    _cleanup_free_ char *text = status_json ? json_dumps(status, JSON_COMPACT) : NULL;
    json_decref(status);
    json_decref(cur);

    Stratus__V1__UpdateStatusRequest req = STRATUS__V1__UPDATE_STATUS_REQUEST__INIT;
    req.kind = (char *)kind;
    req.namespace_ = (char *)(streq(kind, "Instance") ? "default" : "");
    req.name = (char *)name;
    req.status_json = text ? text : (char *)"";
    char *fin[1] = {(char *)remove_finalizer};
    if (remove_finalizer) {
        req.remove_finalizers = fin;
        req.n_remove_finalizers = 1;
    }
    Stratus__V1__ObjectResponse *rep = NULL;
    int r = rpc_client_update_status(fx->client, &req, 10 * USEC_PER_SEC, &rep, &st);
    if (r < 0)
        fprintf(stderr, "UpdateStatus %s/%s: %s\n", kind, name, st.message);
    CHECK_OK(r);
    rpc_message_free(rep);
}

static void bind_instance(const char *name, const char *node)
{
    json_t *obj = NULL;
    rpc_status st;
    CHECK_OK(fx_get(fx, "Instance", "default", name, &obj, &st));
    Stratus__V1__Binding b = STRATUS__V1__BINDING__INIT;
    b.namespace_ = (char *)"default";
    b.name = (char *)name;
    b.uid = (char *)api_object_uid(obj);
    b.node = (char *)node;
    Stratus__V1__Binding *bs[1] = {&b};
    Stratus__V1__BindRequest req = STRATUS__V1__BIND_REQUEST__INIT;
    req.bindings = bs;
    req.n_bindings = 1;
    Stratus__V1__BindResponse *rep = NULL;
    CHECK_OK(rpc_client_bind(fx->client, &req, 10 * USEC_PER_SEC, &rep, &st));
    CHECK_INT(rep->n_results, ==, 1);
    if (!rep->results[0]->ok)
        fprintf(stderr, "Bind %s: %s\n", name, rep->results[0]->message);
    CHECK(rep->results[0]->ok);
    rpc_message_free(rep);
    json_decref(obj);
}

/* An RFC 3339 timestamp `ago` seconds before now. */
static const char *ts_ago(int ago, char out[static TIMESTAMP_MAX])
{
    return timestamp_format(now_realtime() - (usec_t)ago * USEC_PER_SEC, out);
}

static void add_event(const char *name, const char *kind, const char *obj_ns, const char *obj,
                      const char *type, const char *reason, const char *message,
                      const char *component, int ago, int count)
{
    char t[TIMESTAMP_MAX], first[TIMESTAMP_MAX];
    char ns_member[128] = "";
    if (obj_ns)
        snprintf(ns_member, sizeof(ns_member), "\"namespace\":\"%s\",", obj_ns);
    _cleanup_free_ char *doc = xasprintf(
        "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Event\",\"metadata\":{\"name\":\"%s\"},"
        "\"spec\":{\"involvedObject\":{\"kind\":\"%s\",%s\"name\":\"%s\"},\"type\":\"%s\","
        "\"reason\":\"%s\",\"message\":\"%s\",\"count\":%d,\"firstTimestamp\":\"%s\","
        "\"lastTimestamp\":\"%s\",\"source\":{\"component\":\"%s\"}}}",
        name, kind, ns_member, obj, type, reason, message, count, ts_ago(ago + 60, first),
        ts_ago(ago, t), component);
    rpc_status st;
    int r = fx_apply(fx, doc, NULL, NULL, &st);
    if (r < 0)
        fprintf(stderr, "event %s: %s\n", name, st.message);
    CHECK_OK(r);
}

/* ---- cases ---- */

static void help_and_version(void)
{
    setup();
    golden g = {.name = "help", .raw = true};
    static const char *const commands[] = {"apply", "get",    "describe", "delete",
                                           "wait",  "events", "console",  "version"};
    CHECK_INT(G(&g, "--help"), ==, 0);
    for (size_t i = 0; i < ELEMENTSOF(commands); i++)
        CHECK_INT(G(&g, commands[i], "--help"), ==, 0);
    CHECK_INT(G(&g, "-h"), ==, 0);
    CHECK_INT(G(&g, "--version"), ==, 0);
    golden_check(&g);
}

static void usage_errors(void)
{
    setup();
    golden g = {.name = "usage", .raw = true};
    const char *const *cases[] = {
        ARGS(""),
        ARGS("frob"),
        ARGS("get"),
        ARGS("get", "instances", "--bogus"),
        ARGS("get", "instances", "-x"),
        ARGS("get", "instances", "-o"),
        ARGS("get", "instances", "-o", "yaml"),
        ARGS("get", "instances", "web-1", "-l", "app=web"),
        ARGS("get", "instance/web-1", "web-2"),
        ARGS("get", "instances", "-w", "web-1", "web-2"),
        ARGS("describe", "instance", "web-1", "--watch"),
        ARGS("apply"),
        ARGS("apply", "manifests/flavors.json"),
        ARGS("apply", "-f", "manifests/flavors.json", "--dry-run=client"),
        ARGS("apply", "-f", "manifests/flavors.json", "--wait=soon"),
        ARGS("delete", "instance"),
        ARGS("delete", "-f", "manifests/flavors.json", "instance", "web-1"),
        ARGS("wait", "instance/web-1"),
        ARGS("wait", "instance/web-1", "--for=running"),
        ARGS("wait", "instance/web-1", "--for=phase=Running", "--timeout=never"),
        ARGS("events", "web-1"),
        ARGS("events", "--for", "web-1"),
        ARGS("console"),
        ARGS("--request-timeout=abc", "get", "instances"),
        ARGS("get", "instances", "--namespace="),
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        /* ARGS("") stands for no arguments at all */
        const char *const *args = streq(cases[i][0], "") ? cases[i] + 1 : cases[i];
        CHECK_INT(golden_run(&g, NULL, args), ==, 2);
    }
    golden_check(&g);
}

static void apply_objects(void)
{
    setup();
    golden g = {.name = "apply"};
    CHECK_INT(G(&g, "apply", "-f", "manifests/flavors.json"), ==, 0);
    CHECK_INT(G(&g, "apply", "-f", "manifests/flavors.json"), ==, 0); /* unchanged */
    CHECK_INT(G(&g, "apply", "-f", "manifests/image-cirros-like.json", "-f",
                "manifests/network-default.json", "-f", "manifests/volume-data.json", "-f",
                "manifests/servergroup-web.json"),
              ==, 0);
    CHECK_INT(G(&g, "apply", "-f", "manifests/instance-web.json", "--dry-run=server"), ==, 0);
    CHECK_INT(G(&g, "get", "instances"), ==, 0); /* the dry run wrote nothing */
    CHECK_INT(G(&g, "apply", "-f", "manifests/instance-web.json"), ==, 0);

    /* standard input, and a change: configured */
    ctl_env in = {.input = "{\"apiVersion\": \"stratus/v1\", \"kind\": \"Flavor\",\n"
                           " \"metadata\": {\"name\": \"m1.tiny\", \"labels\": {\"family\": "
                           "\"m1\"}},\n \"spec\": {\"vcpus\": 1, \"memoryMiB\": 512, "
                           "\"rootDiskGiB\": 1, \"extraSpecs\": {\"hw:cpu_policy\": "
                           "\"dedicated\"}}}\n"};
    CHECK_INT(G_ENV(&g, &in, "apply", "-f", "-"), ==, 0);
    /* a flavor's sizes are fixed: refused, naming the field */
    ctl_env resize = {.input = "{\"apiVersion\": \"stratus/v1\", \"kind\": \"Flavor\",\n"
                               " \"metadata\": {\"name\": \"m1.tiny\"},\n \"spec\": "
                               "{\"vcpus\": 1, \"memoryMiB\": 1024, \"rootDiskGiB\": 1}}\n"};
    CHECK_INT(G_ENV(&g, &resize, "apply", "-f", "-"), ==, 1);

    /* a folder (in name order, skipping what is not *.json) holding a file of several
     * documents one after the other */
    char dir[700];
    snprintf(dir, sizeof(dir), "%s/objects", tmp);
    mkdir(dir, 0755);
    char path[800];
    snprintf(path, sizeof(path), "%s/b-networks.json", dir);
    write_file(path, "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":{\"name\":"
                     "\"storage\"},\"spec\":{\"cidr\":\"10.89.0.0/24\"}}\n"
                     "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Network\",\"metadata\":{\"name\":"
                     "\"backup\",\"namespace\":\"ops\"},\"spec\":{\"cidr\":\"10.90.0.0/24\","
                     "\"gateway\":\"10.90.0.254\",\"dhcp\":false,\"mtu\":9000}}\n");
    snprintf(path, sizeof(path), "%s/a-flavor.json", dir);
    write_file(path, "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"m2.large\"},\"spec\":{\"vcpus\":4,\"memoryMiB\":8192,\"rootDiskGiB\":80,"
                     "\"swapMiB\":2048}}");
    snprintf(path, sizeof(path), "%s/README.md", dir);
    write_file(path, "not a manifest\n");
    ctl_env in_tmp = {.cwd = tmp};
    CHECK_INT(G_ENV(&g, &in_tmp, "apply", "-f", "objects"), ==, 0);
    CHECK_INT(G_ENV(&g, &in_tmp, "apply", "-f", "objects/", "--dry-run"), ==, 0);
    golden_check(&g);
}

static void apply_errors(void)
{
    setup();
    golden g = {.name = "apply-errors"};
    ctl_env e = {.cwd = tmp};
    char path[800];
    snprintf(path, sizeof(path), "%s/invalid.json", tmp);
    write_file(path, "{\n  \"apiVersion\": \"stratus/v1\",\n  \"kind\": \"Flavor\",\n"
                     "  \"metadata\": {\"name\": \"broken\"},\n  \"spec\": {\"vcpus\": 1,, }\n}\n");
    snprintf(path, sizeof(path), "%s/invalid-second.json", tmp);
    write_file(path, "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"fine\"},\"spec\":{\"vcpus\":1,\"memoryMiB\":512}}\n\n  {\"kind\": oops}\n");
    snprintf(path, sizeof(path), "%s/bad-item.json", tmp);
    write_file(path, "{\"apiVersion\": \"stratus/v1\", \"kind\": \"List\", \"items\": [\n"
                     "  {\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"f.one\"},\"spec\":{\"vcpus\":1,\"memoryMiB\":512}},\n"
                     "  {\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"f.two\"},\"spec\":{\"vcpus\":2,\"memoryMiB\":512}},\n"
                     "  {\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"f.three\"},\"spec\":{\"vcpus\":-2,\"memoryMiB\":512}},\n"
                     "  {\"apiVersion\":\"stratus/v1\",\"kind\":\"Flavor\",\"metadata\":{\"name\":"
                     "\"f.four\"},\"spec\":{\"vcpus\":4,\"memoryMiB\":512}}\n]}\n");
    snprintf(path, sizeof(path), "%s/unknown-kind.json", tmp);
    write_file(path, "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Gadget\",\"metadata\":{\"name\":"
                     "\"g\"},\"spec\":{}}\n");
    snprintf(path, sizeof(path), "%s/missing-ref.json", tmp);
    write_file(path, "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":"
                     "\"web-9\"},\"spec\":{\"flavor\":\"m9.huge\",\"image\":\"cirros-like\"}}\n");
    snprintf(path, sizeof(path), "%s/empty.json", tmp);
    write_file(path, " \n");
    snprintf(path, sizeof(path), "%s/array.json", tmp);
    write_file(path, "[{\"kind\": \"Flavor\"}]\n");

    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "no-such-file.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "invalid.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "invalid-second.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "bad-item.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "get", "flavors"), ==, 0); /* f.one and f.two stayed */
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "unknown-kind.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "missing-ref.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "empty.json"), ==, 1);
    CHECK_INT(G_ENV(&g, &e, "apply", "-f", "array.json"), ==, 1);
    CHECK_INT(G(&g, "apply", "-f", "manifests/instance-web.json", "-n", "prod"), ==, 1);
    CHECK_INT(G(&g, "delete", "flavors", "f.one", "f.two"), ==, 0);
    golden_check(&g);
}

static void get_objects(void)
{
    setup();
    golden g = {.name = "get"};
    CHECK_INT(G(&g, "get", "flavors"), ==, 0);
    CHECK_INT(G(&g, "get", "fl", "m1.tiny"), ==, 0);
    CHECK_INT(G(&g, "get", "flavor/m1.small", "-o", "name"), ==, 0);
    CHECK_INT(G(&g, "get", "flavors", "-o", "wide", "-l", "family=m1"), ==, 0);
    CHECK_INT(G(&g, "get", "instances"), ==, 0);
    CHECK_INT(G(&g, "get", "inst", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "get", "i", "web-1", "-o", "json"), ==, 0);
    CHECK_INT(G(&g, "get", "i", "-o", "name"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "-l", "app=web,tier in (frontend)"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "-l", "app=db"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "--field-selector", "spec.flavor=m1.small"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "--field-selector", "spec.flavr=x"), ==, 1);
    CHECK_INT(G(&g, "get", "instances", "-l", "app in web"), ==, 1);
    CHECK_INT(G(&g, "get", "images"), ==, 0);
    CHECK_INT(G(&g, "get", "img", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "get", "networks"), ==, 0);
    CHECK_INT(G(&g, "get", "networks", "-A", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "get", "net", "-n", "ops"), ==, 0);
    CHECK_INT(G(&g, "get", "volumes"), ==, 0);
    CHECK_INT(G(&g, "get", "vol", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "get", "servergroups"), ==, 0);
    CHECK_INT(G(&g, "get", "sg", "web", "-o", "json"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "-A"), ==, 0);
    CHECK_INT(G(&g, "get", "instance/web-1", "flavor/m1.small", "flavor/m1.tiny"), ==, 0);
    CHECK_INT(G(&g, "get", "instance", "web-9"), ==, 1);
    CHECK_INT(G(&g, "get", "instance", "web-1", "web-9", "-o", "name"), ==, 1);
    CHECK_INT(G(&g, "get", "flavors", "m9.huge", "-o", "json"), ==, 1);
    CHECK_INT(G(&g, "get", "gadgets"), ==, 1);
    CHECK_INT(G(&g, "get", "instances", "-n", "empty"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "-n", "empty", "-o", "json"), ==, 0);
    CHECK_INT(G(&g, "get", "nodes"), ==, 0);
    CHECK_INT(G(&g, "get", "leases"), ==, 0);
    CHECK_INT(G(&g, "get", "flavors", "-o", "json", "-l", "family=m1"), ==, 0);
    golden_check(&g);
}

static void round_trip(void)
{
    setup();
    /* get -o json's output applies back as it is: unchanged */
    result r = RUN("get", "flavors", "-o", "json");
    CHECK_INT(r.code, ==, 0);
    ctl_env in = {.input = r.out};
    result again = ctl_run_env(&in, ARGS("apply", "-f", "-"));
    CHECK_INT(again.code, ==, 0);
    CHECK(strstr(again.out, "flavor/m1.small unchanged"));
    CHECK(!strstr(again.out, "configured"));
    result_done(&again);
    result_done(&r);
}

static void nodes_and_describe(void)
{
    setup();
    golden g = {.name = "describe"};
    CHECK_INT(G(&g, "apply", "-f", "manifests/node-example.json"), ==, 0);
    CHECK_INT(G(&g, "get", "nodes"), ==, 0); /* no capacity reported yet */
    char t1[TIMESTAMP_MAX], t2[TIMESTAMP_MAX];
    _cleanup_free_ char *node_status = xasprintf(
        "{\"capacity\":{\"vcpus\":8,\"memoryMiB\":16384,\"diskGiB\":200},"
        "\"allocatable\":{\"vcpus\":7,\"memoryMiB\":15360,\"diskGiB\":190},"
        "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"AgentReady\","
        "\"message\":\"libvirt is up\",\"lastTransitionTime\":\"%s\"}],"
        "\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.10.11\"},"
        "{\"type\":\"Hostname\",\"address\":\"node-1\"}],"
        "\"nodeInfo\":{\"hostname\":\"node-1\",\"architecture\":\"x86_64\",\"hypervisor\":"
        "\"qemu\",\"backend\":\"test\",\"agentVersion\":\"0.1.0\"}}",
        ts_ago(300, t1));
    update_status("Node", "node-1", node_status, NULL);
    bind_instance("web-1", "node-1");

    /* web-1 in the middle of its build, after one failed attempt elsewhere */
    char c1[TIMESTAMP_MAX], c2[TIMESTAMP_MAX], c3[TIMESTAMP_MAX];
    _cleanup_free_ char *building = xasprintf(
        "{\"phase\":\"Building\",\"nodeName\":\"node-1\",\"observedGeneration\":1,"
        "\"conditions\":["
        "{\"type\":\"Scheduled\",\"status\":\"True\",\"reason\":\"Bound\",\"message\":\"bound "
        "to node-1\",\"lastTransitionTime\":\"%s\"},"
        "{\"type\":\"ResourcesClaimed\",\"status\":\"True\",\"reason\":\"Claimed\","
        "\"lastTransitionTime\":\"%s\"},"
        "{\"type\":\"BlockDevicesReady\",\"status\":\"False\",\"reason\":\"Downloading\","
        "\"message\":\"fetching image cirros-like\",\"lastTransitionTime\":\"%s\"}],"
        "\"attempts\":[{\"nodeName\":\"node-2\",\"step\":\"Claim\",\"reason\":"
        "\"InsufficientMemory\",\"message\":\"2048 MiB requested, 1024 MiB free\",\"time\":"
        "\"%s\"}],"
        "\"timeline\":["
        "{\"step\":\"Claim\",\"startTime\":\"2026-01-02T03:04:05.100Z\",\"endTime\":"
        "\"2026-01-02T03:04:05.520Z\",\"result\":\"Succeeded\"},"
        "{\"step\":\"BlockDevices\",\"startTime\":\"2026-01-02T03:04:05.520Z\",\"endTime\":"
        "\"2026-01-02T03:04:18Z\",\"result\":\"Failed\"},"
        "{\"step\":\"BlockDevices\",\"startTime\":\"2026-01-02T03:04:20Z\",\"endTime\":"
        "\"2026-01-02T03:04:51.250Z\",\"result\":\"Succeeded\"},"
        "{\"step\":\"Network\",\"startTime\":\"2026-01-02T03:04:51.250Z\"}]}",
        ts_ago(50, c1), ts_ago(40, c2), ts_ago(30, c3), ts_ago(90, t2));
    update_status("Instance", "web-1", building, NULL);
    add_event("web-1.scheduled", "Instance", "default", "web-1", "Normal", "Scheduled",
              "bound to node-1", "stratus-scheduler", 50, 1);
    add_event("web-1.unbound", "Instance", "default", "web-1", "Warning", "InsufficientMemory",
              "node-2 gave it back: 2048 MiB requested, 1024 MiB free", "stratus-node-agent", 80,
              1);
    add_event("web-1.pulling", "Instance", "default", "web-1", "Normal", "Downloading",
              "fetching image cirros-like", "stratus-node-agent", 30, 3);
    add_event("node-1.ready", "Node", NULL, "node-1", "Normal", "NodeReady", "node-1 is ready",
              "stratus-node-agent", 300, 1);

    CHECK_INT(G(&g, "get", "nodes"), ==, 0);
    CHECK_INT(G(&g, "get", "nodes", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "get", "instances", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "describe", "instance", "web-1"), ==, 0);
    CHECK_INT(G(&g, "describe", "node/node-1"), ==, 0);
    CHECK_INT(G(&g, "describe", "flavors", "m1.medium", "m1.tiny"), ==, 0);
    CHECK_INT(G(&g, "describe", "net", "-n", "ops", "-l", "!nothing"), ==, 0);
    CHECK_INT(G(&g, "describe", "image/cirros-like"), ==, 0);
    CHECK_INT(G(&g, "describe", "sg", "web"), ==, 0);
    CHECK_INT(G(&g, "describe", "instance", "web-9"), ==, 1);
    CHECK_INT(G(&g, "describe", "instances", "-l", "app=db"), ==, 0);
    golden_check(&g);
}

static void events(void)
{
    setup();
    golden g = {.name = "events"};
    CHECK_INT(G(&g, "events"), ==, 0);
    CHECK_INT(G(&g, "events", "-A", "-o", "wide"), ==, 0);
    CHECK_INT(G(&g, "events", "--for", "instance/web-1"), ==, 0);
    CHECK_INT(G(&g, "events", "--for", "node/node-1", "-o", "name"), ==, 0);
    CHECK_INT(G(&g, "get", "events"), ==, 0);
    CHECK_INT(G(&g, "events", "-n", "ops"), ==, 0);
    golden_check(&g);
}

/* The instance manifest of a small unbound instance. */
static const char *small_instance(const char *name, char *out, size_t size)
{
    snprintf(out, size,
             "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"app\":\"batch\"}},\"spec\":{\"flavor\":\"m1.tiny\",\"image\":"
             "\"cirros-like\",\"networks\":[{\"network\":\"default\"}]}}",
             name);
    return out;
}

static void watch_and_wait(void)
{
    setup();
    golden g = {.name = "watch-wait"};
    char doc[1024], t[TIMESTAMP_MAX];

    /* apply --wait follows web-2 from Pending to Running, a line per change (not a terminal) */
    ctl_env in = {.input = small_instance("web-2", doc, sizeof(doc))};
    proc *p = ctl_start(&in, ARGS("apply", "-f", "-", "--wait=60s"), true);
    CHECK(proc_wait_text(p, "instance/web-2: Pending"));
    _cleanup_free_ char *building = xasprintf(
        "{\"phase\":\"Building\",\"conditions\":[{\"type\":\"Scheduled\",\"status\":\"True\","
        "\"reason\":\"Bound\",\"lastTransitionTime\":\"%s\"},{\"type\":\"NetworkReady\","
        "\"status\":\"False\",\"reason\":\"Plugging\",\"message\":\"creating tap0\","
        "\"lastTransitionTime\":\"%s\"}]}",
        ts_ago(5, t), ts_ago(2, t));
    update_status("Instance", "web-2", building, NULL);
    CHECK(proc_wait_text(p, "instance/web-2: Building"));
    _cleanup_free_ char *running = xasprintf(
        "{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Scheduled\",\"status\":\"True\","
        "\"reason\":\"Bound\",\"lastTransitionTime\":\"%s\"},{\"type\":\"Ready\",\"status\":"
        "\"True\",\"reason\":\"Booted\",\"message\":\"the guest reported in\","
        "\"lastTransitionTime\":\"%s\"}]}",
        ts_ago(5, t), ts_ago(1, t));
    update_status("Instance", "web-2", running, NULL);
    result r = proc_finish(p, false);
    golden_add(&g, &r);
    CHECK_INT(r.code, ==, 0);
    result_done(&r);

    /* a Failed instance ends apply --wait with exit 1 */
    ctl_env in3 = {.input = small_instance("web-3", doc, sizeof(doc))};
    p = ctl_start(&in3, ARGS("apply", "-f", "-", "--wait"), true);
    CHECK(proc_wait_text(p, "instance/web-3: Pending"));
    update_status("Instance", "web-3",
                  "{\"phase\":\"Failed\",\"reason\":\"RescheduleLimit\",\"message\":\"3 attempts "
                  "failed; see status.attempts\"}",
                  NULL);
    r = proc_finish(p, false);
    golden_add(&g, &r);
    CHECK_INT(r.code, ==, 1);
    result_done(&r);

    /* wait: already there, a timeout, a deletion of something absent */
    CHECK_INT(G(&g, "wait", "instance/web-2", "--for=condition=Ready", "--timeout=10s"), ==, 0);
    CHECK_INT(G(&g, "wait", "instance", "web-2", "web-3", "--for=phase=Running", "--timeout=1s"),
              ==, 1);
    CHECK_INT(G(&g, "wait", "instance/web-2", "--for=condition=Ready=false", "--timeout=1s"), ==,
              1);
    CHECK_INT(G(&g, "wait", "instance/web-9", "--for=delete"), ==, 0);
    CHECK_INT(G(&g, "wait", "instance/web-9", "--for=phase=Running"), ==, 1);

    /* wait that happens while waiting */
    p = ctl_start(&(ctl_env){0}, ARGS("wait", "i/web-3", "--for=phase=Running", "--timeout=60s"),
                  false);
    usleep(300 * 1000);
    update_status("Instance", "web-3", running, NULL);
    r = proc_finish(p, false);
    golden_add(&g, &r);
    CHECK_INT(r.code, ==, 0);
    result_done(&r);

    /* get -w: the list, then a row per change */
    p = ctl_start(&(ctl_env){0},
                  ARGS("get", "instances", "-l", "app=batch", "-w", "--request-timeout=5s"), true);
    CHECK(proc_wait_text(p, "web-3"));
    update_status("Instance", "web-2",
                  "{\"phase\":\"Stopped\",\"conditions\":[{\"type\":\"Ready\",\"status\":"
                  "\"False\",\"reason\":\"Stopped\"}]}",
                  NULL);
    CHECK(proc_wait_text(p, "Stopped"));
    CHECK_OK(fx_apply(fx, small_instance("web-4", doc, sizeof(doc)), NULL, NULL, &(rpc_status){0}));
    CHECK(proc_wait_text(p, "web-4"));
    r = proc_finish(p, true);
    r.code = 0; /* ended by the test's SIGTERM */
    golden_add(&g, &r);
    result_done(&r);

    /* get -w of one object, as JSON */
    p = ctl_start(&(ctl_env){0}, ARGS("get", "instance", "web-4", "-w", "-o", "name"), true);
    CHECK(proc_wait_text(p, "instance/web-4\n"));
    update_status("Instance", "web-4", running, NULL);
    usleep(200 * 1000);
    fx_delete(fx, "Instance", "default", "web-4", NULL, &(rpc_status){0});
    /* ADDED at the list, MODIFIED, DELETED: three lines */
    CHECK(proc_wait_text(p, "instance/web-4\ninstance/web-4\ninstance/web-4\n"));
    r = proc_finish(p, true);
    r.code = 0;
    golden_add(&g, &r);
    result_done(&r);
    CHECK_INT(G(&g, "get", "instance", "web-9", "-w"), ==, 1);
    golden_check(&g);
}

static void delete_objects(void)
{
    setup();
    golden g = {.name = "delete"};
    /* web-1 is bound: the agent's finalizer keeps it until removed */
    proc *p = ctl_start(&(ctl_env){0}, ARGS("delete", "instance", "web-1", "--wait=60s"), true);
    CHECK(proc_wait_text(p, "instance \"web-1\" deleted"));
    CHECK_INT(G(&g, "get", "instances", "web-1"), ==, 0); /* Deleting, still there */
    update_status("Instance", "web-1", NULL, "stratus.io/node-agent");
    result r = proc_finish(p, false);
    golden_add(&g, &r);
    CHECK_INT(r.code, ==, 0);
    result_done(&r);

    CHECK_INT(G(&g, "delete", "i", "web-2", "web-9"), ==, 1);
    CHECK_INT(G(&g, "delete", "instance/web-9", "--ignore-not-found"), ==, 0);
    CHECK_INT(G(&g, "delete", "instances", "-l", "app=batch", "--wait"), ==, 0);
    CHECK_INT(G(&g, "delete", "instances", "-l", "app=batch"), ==, 0);
    char path[800];
    snprintf(path, sizeof(path), "%s/objects", tmp);
    ctl_env in_tmp = {.cwd = tmp};
    CHECK_INT(G_ENV(&g, &in_tmp, "delete", "-f", "objects"), ==, 0);
    CHECK_INT(G_ENV(&g, &in_tmp, "delete", "-f", "objects"), ==, 1);
    CHECK_INT(G(&g, "get", "instances", "-A"), ==, 0);
    CHECK_INT(G(&g, "console", "instance/web-1"), ==, 1);
    golden_check(&g);
}

static void console(void)
{
    setup();
    golden g = {.name = "console"};
    char doc[1024];
    CHECK_OK(fx_apply(fx, small_instance("con-1", doc, sizeof(doc)), NULL, NULL, &(rpc_status){0}));
    CHECK_INT(G(&g, "console", "con-1"), ==, 1);
    CHECK_INT(G(&g, "console", "instance/con-1"), ==, 1);
    CHECK_INT(G(&g, "console", "flavor/m1.tiny"), ==, 1);
    CHECK_INT(G(&g, "console", "instance", "nope"), ==, 1);
    fx_delete(fx, "Instance", "default", "con-1", NULL, &(rpc_status){0});
    golden_check(&g);
}

/* A server that cannot be reached: a clear message, and the command returns. */
static void unreachable_server(void)
{
    setup();
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", test_free_port());
    ctl_env e = {.server = dead};
    result r = ctl_run_env(&e, ARGS("get", "instances"));
    CHECK_INT(r.code, ==, 1);
    char want[256];
    snprintf(want, sizeof(want), "error: cannot reach the apiserver at %s: ", dead);
    CHECK(strncmp(r.err, want, strlen(want)) == 0);
    CHECK_STR(r.out, "");
    CHECK(r.elapsed < 30 * USEC_PER_SEC);
    result_done(&r);

    r = ctl_run_env(&e, ARGS("apply", "-f", "manifests/flavors.json"));
    CHECK_INT(r.code, ==, 1);
    CHECK(strncmp(r.err, want, strlen(want)) == 0);
    CHECK(strstr(r.err, "\nnote: nothing was applied\n"));
    result_done(&r);

    r = ctl_run_env(&e, ARGS("wait", "instance/web-1", "--for=delete"));
    CHECK_INT(r.code, ==, 1);
    CHECK(strncmp(r.err, want, strlen(want)) == 0);
    result_done(&r);

    /* A server that accepts connections and never answers: the request timeout ends it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 8) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    char silent[64];
    snprintf(silent, sizeof(silent), "127.0.0.1:%d", ntohs(a.sin_port));
    ctl_env s = {.server = silent};
    r = ctl_run_env(&s, ARGS("get", "flavors", "--request-timeout=2s"));
    close(fd);
    CHECK_INT(r.code, ==, 1);
    snprintf(want, sizeof(want),
             "error: no answer from the apiserver at %s within 2s (--request-timeout)\n", silent);
    CHECK_STR(r.err, want);
    CHECK(r.elapsed < 30 * USEC_PER_SEC);
    result_done(&r);
}

/* --server, then STRATUS_SERVER, then the config file, then the default. */
static void server_address(void)
{
    setup();
    golden g = {.name = "config"};
    char home[700], dir[800], cfg[900], other[900];
    snprintf(home, sizeof(home), "%s/cfg-home", tmp);
    snprintf(dir, sizeof(dir), "%s/.stratus", home);
    mkdir(home, 0755);
    mkdir(dir, 0755);
    snprintf(cfg, sizeof(cfg), "%s/config", dir);
    _cleanup_free_ char *text =
        xasprintf("{\"server\": \"%s\", \"newerSetting\": true}\n", fx->target);
    write_file(cfg, text);
    snprintf(other, sizeof(other), "%s/other-config", tmp);
    write_file(other, "{\"server\": 7443}\n");
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", test_free_port());

    ctl_env from_file = {.server = "", .home = home};
    CHECK_INT(G_ENV(&g, &from_file, "get", "flavor", "m1.small"), ==, 0);
    ctl_env env_wins = {.server = dead, .home = home};
    CHECK_INT(G_ENV(&g, &env_wins, "get", "flavor", "m1.small"), ==, 1);
    CHECK_INT(G_ENV(&g, &env_wins, "get", "flavor", "m1.small", "--server", fx->target), ==, 0);
    ctl_env explicit = {.server = "", .cwd = tmp};
    CHECK_INT(G_ENV(&g, &explicit, "--config", "cfg-home/.stratus/config", "get", "fl", "m1.small"),
              ==, 0);
    CHECK_INT(G_ENV(&g, &explicit, "get", "fl", "--config", "no-such-config"), ==, 1);
    CHECK_INT(G_ENV(&g, &explicit, "get", "fl", "--config", "other-config"), ==, 1);
    CHECK_INT(G_ENV(&g, &explicit, "version", "--config", "cfg-home/.stratus/config"), ==, 0);
    golden_check(&g);

    /* no flag, no environment, no config file: the default address */
    ctl_env nothing = {.server = ""};
    result r = ctl_run_env(&nothing, ARGS("get", "flavors", "--request-timeout=2s"));
    CHECK(r.code == 0 || strstr(r.err, "127.0.0.1:7443")); /* someone may run a cluster there */
    result_done(&r);
}

CHECK_MAIN(CASE(help_and_version), CASE(usage_errors), CASE(apply_objects), CASE(apply_errors),
           CASE(get_objects), CASE(round_trip), CASE(nodes_and_describe), CASE(events),
           CASE(watch_and_wait), CASE(delete_objects), CASE(console), CASE(unreachable_server),
           CASE(server_address))
