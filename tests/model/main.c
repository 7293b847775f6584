/* main.c - sl_model: generate programs from seeds, run each on the library
 * (in a forked child with a watchdog), check it against the reference
 * model (one worker) and the invariants (any number of workers), shrink
 * what fails and print it with the command that reproduces it.
 * Usage: tests/model/README.md, or sl_model --help. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stackless.h>

#include "model.h"

/* ---- options ---------------------------------------------------------------- */

static struct {
    int workers[8], nworkers;
    long programs;     /* per worker count */
    uint64_t seed;     /* the first program's seed */
    bool seed_given;
    bool soak;
    double time_limit; /* seconds, 0: none */
    long one;          /* --one: that program only (-1: not given) */
    const char *prog;  /* --prog: an encoded program */
    int repeat;        /* runs of each program */
    int timeout;       /* seconds a program may take (0: by workers) */
    unsigned features;
    int stack_mode, steal;
    bool shrink;
    int shrink_repeat; /* runs per candidate with several workers */
    double shrink_time;
    int max_classes;
    int batch;
    bool verbose;
    bool nofork;       /* --nofork: in this process (for gdb) */
    bool stats;        /* --stats: print the outcomes of the ops */
    bool spawn_gate;
    const char *argv0;
    char flags[512];   /* the --no-* flags given, for repro commands */
} opt = {
    .programs = 1000,
    .one = -1,
    .repeat = 1,
    .timeout = 0,
    .features = F_ALL,
    .stack_mode = SL_STACK_FIXED,
    .steal = 1,
    .shrink = true,
    .shrink_repeat = 30,
    .shrink_time = 120,
    .max_classes = 20,
    .batch = 200,
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: sl_model [options]\n"
        "  --workers LIST     worker counts to run, e.g. 1,2,4 (default 1,2,4)\n"
        "  --programs N       programs per worker count (default 1000)\n"
        "  --seed S           seed of the first program (default: from the clock,\n"
        "                     printed); program i has seed S + i\n"
        "  --soak             run until interrupted or --time runs out, cycling\n"
        "                     the worker counts, --programs at a time\n"
        "  --time SEC         stop starting programs after SEC seconds\n"
        "  --one SEED         run that program only, print it and its logs\n"
        "  --prog TEXT        run the encoded program a failure report printed\n"
        "  --repeat N         run each program N times (several workers: the\n"
        "                     interleaving differs each time)\n"
        "  --timeout SEC      a program running longer is a hang (default 10 on\n"
        "                     one worker, whose clock is virtual; 20 on more)\n"
        "  --stack copy       copy stacks (default fixed)\n"
        "  --no-steal         sl_config.steal = 0\n"
        "  --no-shrink        report failures as generated\n"
        "  --shrink-repeat N  runs per shrinking candidate, several workers (30)\n"
        "  --shrink-time SEC  time one shrink may take (default 120)\n"
        "  --max-classes N    stop after N distinct failures (default 20)\n"
        "  --no-FEATURE       programs without FEATURE (--features lists them)\n"
        "  --features         list the features\n"
        "  --spawn-gate       a new tasklet yields until its spawner holds its\n"
        "                     reference (works around a pinned spawn's handle\n"
        "                     dying inside sl_spawn_ex)\n"
        "  --stats            print how often each op returned what\n"
        "  --nofork           run in this process (for a debugger)\n"
        "  -v                 print every program's result\n");
}

static void list_features(void)
{
    for (const struct mt_feature_name *f = mt_feature_names; f->name; f++)
        printf("  --no-%-22s %s\n", f->name, f->what);
}

static bool parse_workers(const char *s)
{
    opt.nworkers = 0;
    while (*s) {
        char *end;
        long w = strtol(s, &end, 10);
        if (end == s || w < 1 || w > 64 || opt.nworkers == 8)
            return false;
        opt.workers[opt.nworkers++] = (int)w;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return false;
    }
    return opt.nworkers > 0;
}

static void parse_args(int argc, char **argv)
{
    opt.argv0 = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                              \
    do {                                                                     \
        if (!v) {                                                            \
            fprintf(stderr, "sl_model: %s needs a value\n", a);              \
            exit(2);                                                         \
        }                                                                    \
        i++;                                                                 \
    } while (0)
        if (!strcmp(a, "--workers")) {
            NEEDV();
            if (!parse_workers(v)) {
                fprintf(stderr, "sl_model: bad --workers %s\n", v);
                exit(2);
            }
        } else if (!strcmp(a, "--programs")) {
            NEEDV();
            opt.programs = atol(v);
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            opt.seed = strtoull(v, NULL, 0);
            opt.seed_given = true;
        } else if (!strcmp(a, "--soak")) {
            opt.soak = true;
        } else if (!strcmp(a, "--time")) {
            NEEDV();
            opt.time_limit = atof(v);
        } else if (!strcmp(a, "--one")) {
            NEEDV();
            opt.one = atol(v);
            opt.seed = strtoull(v, NULL, 0);
        } else if (!strcmp(a, "--prog")) {
            NEEDV();
            opt.prog = v;
        } else if (!strcmp(a, "--repeat")) {
            NEEDV();
            opt.repeat = atoi(v) > 0 ? atoi(v) : 1;
        } else if (!strcmp(a, "--timeout")) {
            NEEDV();
            opt.timeout = atoi(v) > 0 ? atoi(v) : 1;
        } else if (!strcmp(a, "--stack")) {
            NEEDV();
            opt.stack_mode = !strcmp(v, "copy") ? SL_STACK_COPY : SL_STACK_FIXED;
        } else if (!strcmp(a, "--no-steal")) {
            opt.steal = 0;
        } else if (!strcmp(a, "--no-shrink")) {
            opt.shrink = false;
        } else if (!strcmp(a, "--shrink-repeat")) {
            NEEDV();
            opt.shrink_repeat = atoi(v) > 0 ? atoi(v) : 1;
        } else if (!strcmp(a, "--shrink-time")) {
            NEEDV();
            opt.shrink_time = atof(v);
        } else if (!strcmp(a, "--max-classes")) {
            NEEDV();
            opt.max_classes = atoi(v);
        } else if (!strcmp(a, "--batch")) {
            NEEDV();
            opt.batch = atoi(v) > 0 ? atoi(v) : 1;
        } else if (!strcmp(a, "--features")) {
            list_features();
            exit(0);
        } else if (!strcmp(a, "--spawn-gate")) {
            opt.spawn_gate = true;
            strncat(opt.flags, " --spawn-gate", sizeof opt.flags - strlen(opt.flags) - 1);
        } else if (!strcmp(a, "--stats")) {
            opt.stats = true;
        } else if (!strcmp(a, "--nofork")) {
            opt.nofork = true;
        } else if (!strcmp(a, "-v")) {
            opt.verbose = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strncmp(a, "--no-", 5)) {
            const struct mt_feature_name *f = mt_feature_names;
            while (f->name && strcmp(f->name, a + 5))
                f++;
            if (!f->name) {
                fprintf(stderr, "sl_model: unknown option %s\n", a);
                usage(stderr);
                exit(2);
            }
            opt.features &= ~f->bit;
            size_t n = strlen(opt.flags);
            snprintf(opt.flags + n, sizeof opt.flags - n, " %s", a);
        } else {
            fprintf(stderr, "sl_model: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
#undef NEEDV
    }
    if (opt.nworkers == 0) {
        opt.workers[0] = 1;
        opt.workers[1] = 2;
        opt.workers[2] = 4;
        opt.nworkers = 3;
    }
    if (!opt.seed_given && opt.one < 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt.seed = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
                    (uint64_t)getpid() << 20) % 1000000000000u;
    }
    if (opt.stack_mode == SL_STACK_COPY)
        strncat(opt.flags, " --stack copy", sizeof opt.flags - strlen(opt.flags) - 1);
    if (!opt.steal)
        strncat(opt.flags, " --no-steal", sizeof opt.flags - strlen(opt.flags) - 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- running one program (in a child) ----------------------------------------- */

static struct mt_log liblog, reflog;

struct verdict {
    char sig[160];
    char msg[600];
    int diff; /* one worker: first event where the logs differ, or -1 */
};

/* Run p once on cfg; a failure's signature in v->sig ("" when it passed). */
static void run_once(const struct mt_prog *p, const struct mt_runcfg *cfg,
                     struct verdict *v)
{
    v->sig[0] = v->msg[0] = '\0';
    v->diff = -1;
    mt_run_lib(p, cfg, &liblog);
    const char *sig = mt_check_invariants(p, &liblog, cfg->workers, v->msg,
                                          sizeof v->msg);
    if (cfg->workers == 1) {
        mt_run_ref(p, cfg->features, &reflog);
        char m2[300];
        const char *msig = mt_check_invariants(p, &reflog, 1, m2, sizeof m2);
        v->diff = mt_first_difference(&liblog, &reflog);
        if (!sig && msig) {
            snprintf(v->sig, sizeof v->sig, "model-self-check:%s", msig);
            snprintf(v->msg, sizeof v->msg, "the model's own log: %s", m2);
            return;
        }
        if (!sig && v->diff >= 0) {
            const struct mt_event *e =
                v->diff < liblog.n ? &liblog.ev[v->diff] : &reflog.ev[v->diff];
            const struct mt_event *m =
                v->diff < reflog.n ? &reflog.ev[v->diff] : e;
            snprintf(v->sig, sizeof v->sig, "model:%s%s/%s%s",
                     mt_op_name(e->kind), e->kind & EV_DRAIN ? "(drain)" : "",
                     mt_op_name(m->kind), m->kind & EV_DRAIN ? "(drain)" : "");
            snprintf(v->msg, sizeof v->msg,
                     "the library and the model differ at event %d", v->diff);
            return;
        }
    }
    if (sig)
        snprintf(v->sig, sizeof v->sig, "%s", sig);
}

/* Outcomes counted by --stats: per op kind, how often each result. */
enum { OC_OK, OC_SKIP, OC_WOULDBLOCK, OC_TIMEDOUT, OC_CLOSED, OC_KILLED,
       OC_DEADLOCK, OC_STATE, OC_INVAL, OC_SENT_ERR, OC_THROWN, OC_OTHER,
       OC__N };
static const char *const rnames[OC__N] = {
    "ok", "skip", "wouldblock", "timedout", "closed", "killed",
    "deadlock", "state", "inval", "sent-err", "thrown", "other"};

/* What a child reports to its parent. */
struct shared {
    volatile long cur;   /* the program running (index in the batch) */
    volatile int failed; /* 1: v holds the failure of program cur */
    struct verdict v;
    long stats[OP__COUNT + 1][OC__N]; /* [OP__COUNT]: tasklet ends */
    long events;
    struct mt_log log; /* the library's log of the failed run */
};

/* The log of the last failure (a copy of shm->log). */
static struct mt_log failed_log;
static bool have_failed_log;

static struct shared *shm;

static int rclass(int kind, int rc)
{
    if (kind == OP_SELECT && rc >= 0)
        return OC_OK;
    switch (rc) {
    case SL_EWOULDBLOCK: return OC_WOULDBLOCK;
    case SL_ETIMEDOUT: return OC_TIMEDOUT;
    case SL_ECLOSED: return OC_CLOSED;
    case SL_EKILLED: return OC_KILLED;
    case SL_EDEADLOCK: return OC_DEADLOCK;
    case SL_ESTATE: return OC_STATE;
    case SL_EINVAL: return OC_INVAL;
    case MT_SKIP: return OC_SKIP;
    default:
        return rc >= 0            ? OC_OK
               : mt_is_thrown(rc) ? OC_THROWN
               : rc <= -200000    ? OC_SENT_ERR
                                  : OC_OTHER;
    }
}

/* --stats: count the outcomes of the library run just made. */
static void tally_log(void)
{
    int n = liblog.n < MT_MAX_EVENTS ? liblog.n : MT_MAX_EVENTS;
    shm->events += n;
    for (int i = 0; i < n; i++) {
        const struct mt_event *e = &liblog.ev[i];
        if (e->kind == EV_END)
            shm->stats[OP__COUNT][e->val ? OC_OTHER : OC_OK]++;
        else if (!(e->kind & EV_DRAIN) && e->kind < OP__COUNT)
            shm->stats[e->kind][rclass(e->kind, e->rc)]++;
    }
}

static void print_stats(long programs)
{
    printf("outcomes of the ops in %ld program runs (%ld events):\n", programs,
           shm->events);
    printf("  %-18s", "");
    for (int r = 0; r < OC__N; r++)
        printf(" %10s", rnames[r]);
    printf("\n");
    for (int k = 0; k <= OP__COUNT; k++) {
        printf("  %-18s", k == OP__COUNT ? "ends (w0 | other)" : mt_op_name(k));
        for (int r = 0; r < OC__N; r++)
            printf(" %10ld", shm->stats[k][r]);
        printf("\n");
    }
}
static int errfd = -1; /* a temporary file: the children's stderr */

/* The children's stderr since the last truncation, NUL-ended. */
static char errtext[1 << 16];

static void read_errtext(void)
{
    ssize_t n = pread(errfd, errtext, sizeof errtext - 1, 0);
    errtext[n > 0 ? n : 0] = '\0';
}

/* The next line of errtext after *pos into line; false at the end. */
static bool next_line(size_t *pos, char *line, size_t cap)
{
    const char *s = errtext + *pos;
    if (!*s)
        return false;
    size_t n = strcspn(s, "\n");
    snprintf(line, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    *pos += n + (s[n] == '\n');
    return true;
}

static struct mt_runcfg runcfg(int workers)
{
    return (struct mt_runcfg){.workers = workers,
                              .stack_mode = opt.stack_mode,
                              .steal = opt.steal,
                              .features = opt.features,
                              .spawn_gate = opt.spawn_gate};
}

/* Seconds one run of a program may take before it counts as a hang. */
static int timeout_of(int workers)
{
    return opt.timeout > 0 ? opt.timeout : workers == 1 ? 10 : 20;
}

/* A program: from its seed, or the one given. */
static void program_of(struct mt_prog *p, uint64_t seed, const struct mt_prog *given)
{
    if (given)
        *p = *given;
    else
        mt_generate(p, seed, opt.features);
}

/* Child: programs first .. first+n-1 (seed + index), each `repeat` times;
 * stops at the first failure. */
static void child_run(uint64_t first, long n, const struct mt_prog *given,
                      int workers, int repeat)
{
    struct mt_runcfg cfg = runcfg(workers);
    for (long i = 0; i < n; i++) {
        struct mt_prog p;
        program_of(&p, first + (uint64_t)i, given);
        shm->cur = i;
        for (int r = 0; r < repeat; r++) {
            alarm((unsigned)timeout_of(workers));
            run_once(&p, &cfg, &shm->v);
            alarm(0);
            if (opt.stats)
                tally_log();
            if (shm->v.sig[0]) {
                memcpy(&shm->log, &liblog, sizeof liblog);
                shm->failed = 1;
                _exit(3);
            }
        }
    }
    _exit(0);
}

/* The children's stderr from the last failure: the sanitizer's report. */
static char crash_text[8192];

static void keep_crash_text(void)
{
    size_t n = 0, pos = 0;
    char line[512];
    int lines = 0;
    read_errtext();
    crash_text[0] = '\0';
    while (next_line(&pos, line, sizeof line) && lines < 60 &&
           n + strlen(line) + 8 < sizeof crash_text) {
        n += (size_t)snprintf(crash_text + n, sizeof crash_text - n, "  | %s\n", line);
        lines++;
    }
}

/* The first line of the children's stderr that names the failure. */
static void stderr_signature(char *sig, size_t cap, char *detail, size_t dcap)
{
    char line[512];
    bool tsan = false, asan = false;
    detail[0] = '\0';
    size_t pos = 0;
    read_errtext();
    while (next_line(&pos, line, sizeof line)) {
        if (!detail[0] && line[0])
            snprintf(detail, dcap, "%s", line);
        const char *s;
        if ((s = strstr(line, "internal invariant broken: "))) {
            snprintf(sig, cap, "abort:%s", s + 27);
            snprintf(detail, dcap, "%s", line);
            return;
        }
        if ((s = strstr(line, "stack overflow in tasklet"))) {
            snprintf(sig, cap, "abort:stack overflow");
            return;
        }
        if ((s = strstr(line, "ThreadSanitizer: "))) {
            /* "data race (pid=N)": the pid differs every run */
            snprintf(sig, cap, "tsan:%.*s", (int)strcspn(s + 17, "("), s + 17);
            size_t n = strlen(sig);
            while (n > 0 && sig[n - 1] == ' ')
                sig[--n] = '\0';
            snprintf(detail, dcap, "%s", line);
            tsan = true;
            continue;
        }
        if ((s = strstr(line, "AddressSanitizer: "))) {
            snprintf(sig, cap, "asan:%.60s", s + 18);
            snprintf(detail, dcap, "%s", line);
            asan = true;
            continue;
        }
        if ((s = strstr(line, "runtime error: "))) {
            snprintf(sig, cap, "ubsan:%.80s", s + 15);
            snprintf(detail, dcap, "%s", line);
            return;
        }
        if ((tsan || asan) && (s = strstr(line, "#0 "))) {
            /* the first frame: "#0 func file:line" */
            const char *f = s + 3;
            if (asan && (s = strstr(f, " in ")))
                f = s + 4;
            size_t n = strlen(sig);
            snprintf(sig + n, cap - n, " in %.*s", (int)strcspn(f, " ("), f);
            return;
        }
    }
}

/* Run programs (seeds first + i, or `given`) in children, one batch per
 * child; returns at the first failure with *at its index (-1: none). */
static void run_programs(uint64_t first, long n, const struct mt_prog *given,
                         int workers, int repeat, long *at, struct verdict *v)
{
    *at = -1;
    long done = 0;
    if (opt.nofork) {
        struct mt_runcfg cfg = runcfg(workers);
        for (long i = 0; i < n; i++) {
            struct mt_prog p;
            program_of(&p, first + (uint64_t)i, given);
            for (int r = 0; r < repeat; r++) {
                run_once(&p, &cfg, v);
                if (v->sig[0]) {
                    *at = i;
                    return;
                }
            }
        }
        return;
    }
    while (done < n) {
        long count = n - done < opt.batch ? n - done : opt.batch;
        if (ftruncate(errfd, 0) < 0 || lseek(errfd, 0, SEEK_SET) < 0) {
            perror("sl_model: the stderr file");
            exit(2);
        }
        shm->cur = 0;
        shm->failed = 0;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("sl_model: fork");
            exit(2);
        }
        if (pid == 0) {
            dup2(errfd, 2);
            child_run(first + (uint64_t)done, count, given, workers, repeat);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            done += count;
            continue;
        }
        *at = done + shm->cur;
        have_failed_log = false;
        crash_text[0] = '\0';
        if (WIFEXITED(st) && WEXITSTATUS(st) == 3 && shm->failed) {
            *v = shm->v;
            memcpy(&failed_log, &shm->log, sizeof failed_log);
            have_failed_log = true;
            return;
        }
        v->diff = -1;
        v->sig[0] = '\0';
        keep_crash_text();
        stderr_signature(v->sig, sizeof v->sig, v->msg, sizeof v->msg);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
            snprintf(v->sig, sizeof v->sig, "hang");
            snprintf(v->msg, sizeof v->msg,
                     "still running after %d s (the watchdog killed it)",
                     timeout_of(workers));
        } else if (!v->sig[0] && WIFSIGNALED(st)) {
            snprintf(v->sig, sizeof v->sig, "crash:%s", sigabbrev_np(WTERMSIG(st)));
        } else if (!v->sig[0]) {
            snprintf(v->sig, sizeof v->sig, "crash:exit %d", WEXITSTATUS(st));
        }
        return;
    }
}

/* ---- shrinking ---------------------------------------------------------------------- */

/* What shrinking keeps: the signature, except that any difference from
 * the model counts (where the logs first differ moves as ops go). */
static bool same_failure(const char *a, const char *b)
{
    if (!strncmp(a, "model:", 6) && !strncmp(b, "model:", 6))
        return true;
    return !strcmp(a, b);
}

/* The failing log of the smallest program so far (several workers). */
static struct mt_log shrunk_log;
static bool have_shrunk_log;

/* Does p still fail the way sig says? */
static bool still_fails(const struct mt_prog *p, int workers, const char *sig)
{
    long at;
    struct verdict v;
    run_programs(0, 1, p, workers, workers == 1 ? 1 : opt.shrink_repeat, &at, &v);
    if (at < 0 || !same_failure(v.sig, sig))
        return false;
    if (have_failed_log)
        memcpy(&shrunk_log, &failed_log, sizeof shrunk_log);
    have_shrunk_log = have_failed_log;
    return true;
}

struct pos {
    int k, i;
};

static bool drop_ops(struct mt_prog *p, const struct pos *drop, int n)
{
    /* drop from the end of each script first so indices stay valid */
    for (int j = n - 1; j >= 0; j--) {
        struct mt_script *s = &p->s[drop[j].k];
        int i = drop[j].i;
        memmove(&s->ops[i], &s->ops[i + 1], (size_t)(s->n - i - 1) * sizeof s->ops[0]);
        s->n--;
    }
    mt_compact(p);
    return true;
}

/* Simpler variants of op o: fewer cases, no timeout, no pin, ... */
static int simpler_ops(const struct mt_op *o, struct mt_op *out)
{
    int n = 0;
    if (o->kind == OP_SELECT && o->ncases > 1)
        for (int c = 0; c < o->ncases; c++) {
            out[n] = *o;
            memmove(&out[n].cases[c], &out[n].cases[c + 1],
                    (size_t)(o->ncases - c - 1) * sizeof o->cases[0]);
            out[n++].ncases--;
        }
    if ((o->kind == OP_SELECT || o->kind == OP_SEND_TO || o->kind == OP_RECV_TO ||
         o->kind == OP_SLEEP) && o->ms > 1) {
        out[n] = *o;
        out[n++].ms = 1;
    }
    if (o->kind == OP_SELECT && o->ms >= 0) {
        out[n] = *o;
        out[n++].ms = -1;
    }
    if (o->kind == OP_SEND_TO || o->kind == OP_RECV_TO) {
        out[n] = *o;
        out[n++].kind = o->kind == OP_SEND_TO ? OP_SEND : OP_RECV;
    }
    if (o->kind == OP_SPAWN && o->pin >= 0) {
        out[n] = *o;
        out[n++].pin = -1;
    }
    if (o->kind == OP_SPAWN && o->arg) {
        out[n] = *o;
        out[n++].arg = 0;
    }
    if (o->kind == OP_SEND_SEQ) {
        if (o->arg > 1) {
            out[n] = *o;
            out[n++].arg = (int8_t)(o->arg - 1);
        }
        out[n] = *o;
        out[n].kind = OP_SEND;
        out[n++].arg = 0;
    }
    return n;
}

static void print_logs(const struct mt_prog *p, int diff)
{
    int from = diff < 0 ? 0 : diff > 12 ? diff - 12 : 0;
    printf("  events, library | model (one worker)%s:\n",
           diff < 0 ? "" : ", '>' marks the first difference");
    int n = liblog.n > reflog.n ? liblog.n : reflog.n;
    if (n > MT_MAX_EVENTS)
        n = MT_MAX_EVENTS;
    for (int i = from; i < n && i < (diff < 0 ? n : diff + 8); i++) {
        printf("  %c%4d  lib: ", i == diff ? '>' : ' ', i);
        if (i < liblog.n)
            mt_print_event(stdout, p, &liblog.ev[i]);
        else
            printf("(none)\n");
        if (i < reflog.n && (i >= liblog.n ||
                             memcmp(&liblog.ev[i], &reflog.ev[i], sizeof reflog.ev[i]))) {
            printf("         model: ");
            mt_print_event(stdout, p, &reflog.ev[i]);
        }
    }
}

static void print_log(const struct mt_prog *p, const struct mt_log *l,
                      const char *what)
{
    printf("  events of %s:\n", what);
    int n = l->n < MT_MAX_EVENTS ? l->n : MT_MAX_EVENTS;
    for (int i = 0; i < n; i++) {
        printf("   %4d  ", i);
        mt_print_event(stdout, p, &l->ev[i]);
    }
}

/* Delta debugging over the ops (ddmin: chunks of n/2, n/4, ... 1), then
 * simpler variants of each op and channel, while it keeps failing with
 * the same signature. */
static void shrink(struct mt_prog *p, int workers, const char *sig, int *tries)
{
    double start = now_s();
    bool progress = true;
    *tries = 0;
    while (progress && now_s() - start < opt.shrink_time) {
        progress = false;
        struct pos all[MT_MAX_SCRIPTS * MT_MAX_OPS];
        int n = 0;
        for (int k = 0; k < p->nscripts; k++)
            for (int i = 0; i < p->s[k].n; i++)
                all[n++] = (struct pos){k, i};
        for (int chunk = n / 2 > 0 ? n / 2 : 1; chunk >= 1 && !progress; chunk /= 2) {
            for (int at = 0; at + chunk <= n && !progress; at += chunk) {
                if (now_s() - start > opt.shrink_time)
                    return;
                struct mt_prog q = *p;
                drop_ops(&q, &all[at], chunk);
                (*tries)++;
                if (still_fails(&q, workers, sig)) {
                    *p = q;
                    progress = true;
                }
            }
        }
        if (progress)
            continue;
        for (int k = 0; k < p->nscripts && !progress; k++)
            for (int i = 0; i < p->s[k].n && !progress; i++) {
                struct mt_op alt[MT_MAX_CASES + 4];
                int m = simpler_ops(&p->s[k].ops[i], alt);
                for (int j = 0; j < m && !progress; j++) {
                    struct mt_prog q = *p;
                    q.s[k].ops[i] = alt[j];
                    (*tries)++;
                    if (still_fails(&q, workers, sig)) {
                        *p = q;
                        progress = true;
                    }
                }
            }
        for (int c = 0; c < p->nchans && !progress; c++) {
            struct mt_chan alts[4];
            int m = 0;
            const struct mt_chan *ch = &p->ch[c];
            if (ch->cap > 1)
                alts[m++] = (struct mt_chan){1, ch->pref, ch->sched_all};
            if (ch->cap > 0)
                alts[m++] = (struct mt_chan){0, ch->pref, ch->sched_all};
            if (ch->pref != -1)
                alts[m++] = (struct mt_chan){ch->cap, -1, ch->sched_all};
            if (ch->sched_all)
                alts[m++] = (struct mt_chan){ch->cap, ch->pref, 0};
            for (int j = 0; j < m && !progress; j++) {
                struct mt_prog q = *p;
                q.ch[c] = alts[j];
                (*tries)++;
                if (still_fails(&q, workers, sig)) {
                    *p = q;
                    progress = true;
                }
            }
        }
    }
}

/* ---- reporting -------------------------------------------------------------------------- */

struct failclass {
    char sig[160];
    int workers;
    uint64_t seed;
    long count;
};

static struct failclass classes[64];
static int nclasses;

static struct failclass *class_of(const char *sig, int workers)
{
    for (int i = 0; i < nclasses; i++)
        if (!strcmp(classes[i].sig, sig) && classes[i].workers == workers)
            return &classes[i];
    return NULL;
}

/* Run p once more in this process (one worker: deterministic) to print
 * its logs. Forked: a crash must not take the tester down. */
static void show_logs(const struct mt_prog *p, int workers)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct mt_runcfg cfg = runcfg(workers);
        struct verdict v;
        alarm((unsigned)timeout_of(workers));
        run_once(p, &cfg, &v);
        if (workers == 1)
            print_logs(p, v.diff);
        else
            print_log(p, &liblog, "another run, which passed");
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st))
        return;
    printf("  (no log: that run %s)\n",
           WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? "hung" : "crashed");
    if (workers != 1)
        return;
    mt_run_ref(p, opt.features, &reflog);
    printf("  events of the model:\n");
    int n = reflog.n < MT_MAX_EVENTS ? reflog.n : MT_MAX_EVENTS;
    for (int i = 0; i < n; i++) {
        printf("   %4d  ", i);
        mt_print_event(stdout, p, &reflog.ev[i]);
    }
}

/* Shrink p (failing as sig says), then drop the channels the last steps
 * left unused; prints what it did. */
static void shrink_report(struct mt_prog *p, int workers, const char *sig)
{
    int tries;
    double t0 = now_s();
    struct mt_prog orig = *p;
    shrink(p, workers, sig, &tries);
    struct mt_prog q = *p;
    mt_compact(&q);
    if (memcmp(&q, p, sizeof q) && still_fails(&q, workers, sig))
        *p = q;
    printf("  shrunk from %d ops to %d in %d runs (%.1f s)\n",
           mt_total_ops(&orig), mt_total_ops(p), tries, now_s() - t0);
}

/* A difference from the model is named after the shrunk program's shape
 * (its op kinds, buffered channels, preferences): where the logs first
 * differ depends on incidental ops, the shape of the minimal program much
 * less. */
static void shape_signature(const struct mt_prog *p, char *sig, size_t cap)
{
    bool kinds[OP__COUNT] = {false}, buffered = false, pref = false;
    for (int k = 0; k < p->nscripts; k++)
        for (int i = 0; i < p->s[k].n; i++)
            kinds[p->s[k].ops[i].kind] = true;
    for (int c = 0; c < p->nchans; c++) {
        buffered = buffered || p->ch[c].cap > 0;
        pref = pref || p->ch[c].pref != -1 || p->ch[c].sched_all;
    }
    size_t n = (size_t)snprintf(sig, cap, "model:");
    for (int k = 0; k < OP__COUNT && n < cap; k++)
        if (kinds[k] && k != OP_SPAWN)
            n += (size_t)snprintf(sig + n, cap - n, "%s%s",
                                  sig[n - 1] == ':' ? "" : "+", mt_op_name(k));
    if (n < cap)
        snprintf(sig + n, cap - n, "%s%s", buffered ? " buffered" : "",
                 pref ? " preference" : "");
}

static void report(const struct mt_prog *orig, int workers,
                   const struct verdict *given)
{
    struct verdict vv = *given, *v = &vv;
    struct mt_prog p = *orig;
    bool shrunk = false;
    have_shrunk_log = have_failed_log;
    if (have_failed_log)
        memcpy(&shrunk_log, &failed_log, sizeof shrunk_log);
    char crash[sizeof crash_text];
    memcpy(crash, crash_text, sizeof crash);
    /* One worker: a difference from the model is cheap to shrink, and its
     * class is the shrunk program's shape. */
    bool shape = workers == 1 && opt.shrink && !strncmp(v->sig, "model:", 6);
    if (shape) {
        printf("\n==== FAIL workers=%d seed=%" PRIu64 ": %s\n     %s\n", workers,
               orig->seed, v->sig, v->msg);
        shrink_report(&p, workers, v->sig);
        shrunk = true;
        shape_signature(&p, v->sig, sizeof v->sig);
        printf("  class: %s\n", v->sig);
    }
    struct failclass *c = class_of(v->sig, workers);
    if (c) {
        c->count++;
        printf("FAIL workers=%d seed=%" PRIu64 " %s (seen before: seed %" PRIu64 ")\n",
               workers, orig->seed, v->sig, c->seed);
        return;
    }
    if (nclasses < 64) {
        c = &classes[nclasses++];
        snprintf(c->sig, sizeof c->sig, "%.159s", v->sig);
        c->workers = workers;
        c->seed = orig->seed;
        c->count = 1;
    }
    char line[4096];
    if (!shape)
        printf("\n==== FAIL workers=%d seed=%" PRIu64 ": %s\n     %s\n", workers,
               orig->seed, v->sig, v->msg);
    if (crash[0] && (!strncmp(v->sig, "tsan:", 5) || !strncmp(v->sig, "asan:", 5) ||
                     !strncmp(v->sig, "ubsan:", 6)))
        printf("  the first report (stderr of the run):\n%s", crash);
    if (opt.shrink && !shrunk) {
        printf("  shrinking...\n");
        fflush(stdout);
        shrink_report(&p, workers, v->sig);
    }
    mt_print_prog(stdout, &p);
    if (workers > 1 && have_shrunk_log)
        print_log(&p, &shrunk_log, "the failed run");
    else if (opt.verbose || workers == 1 || mt_total_ops(&p) <= 12)
        show_logs(&p, workers);
    mt_encode(&p, line, sizeof line);
    printf("  reproduce: %s --workers %d --prog '%s'%s%s\n", opt.argv0, workers,
           line, opt.flags, workers > 1 ? " --repeat 200" : "");
    printf("  the generated program: %s --workers %d --one %" PRIu64 "%s%s\n\n",
           opt.argv0, workers, orig->seed, opt.flags,
           workers > 1 ? " --repeat 200" : "");
    fflush(stdout);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int run_given(const struct mt_prog *p)
{
    int fails = 0;
    mt_print_prog(stdout, p);
    for (int w = 0; w < opt.nworkers; w++) {
        int workers = opt.workers[w];
        long at;
        struct verdict v;
        run_programs(0, 1, p, workers, opt.repeat, &at, &v);
        if (at < 0) {
            printf("workers=%d: passed (%d run%s)\n", workers, opt.repeat,
                   opt.repeat > 1 ? "s" : "");
            if (opt.verbose || workers == 1)
                show_logs(p, workers);
            continue;
        }
        fails++;
        printf("workers=%d: FAIL %s\n  %s\n", workers, v.sig, v.msg);
        if (crash_text[0])
            printf("  stderr of that run:\n%s", crash_text);
        if (workers > 1 && have_failed_log)
            print_log(p, &failed_log, "the failed run");
        else
            show_logs(p, workers);
    }
    return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    parse_args(argc, argv);
    /* glibc's fatal messages (a corrupt heap) go to stderr, which the
     * children write to a file, not to the terminal. */
    setenv("LIBC_FATAL_STDERR_", "1", 1);
    shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    FILE *tmp = tmpfile();
    errfd = tmp ? fileno(tmp) : -1;
    if (shm == MAP_FAILED || errfd < 0) {
        perror("sl_model");
        return 2;
    }
    if (opt.prog || opt.one >= 0) {
        struct mt_prog p;
        if (opt.prog && !mt_decode(&p, opt.prog)) {
            fprintf(stderr, "sl_model: --prog: not a program\n");
            return 2;
        }
        if (!opt.prog)
            mt_generate(&p, opt.seed, opt.features);
        return run_given(&p);
    }
    printf("sl_model: seed %" PRIu64 ", %ld programs per worker count, workers",
           opt.seed, opt.programs);
    for (int w = 0; w < opt.nworkers; w++)
        printf("%s%d", w ? "," : " ", opt.workers[w]);
    printf("%s%s\n", opt.flags[0] ? ", flags" : "", opt.flags);
    double start = now_s();
    long ran[8] = {0};
    uint64_t seed = opt.seed;
    bool stop = false;
    do {
        for (int w = 0; w < opt.nworkers && !stop; w++) {
            int workers = opt.workers[w];
            long i = 0;
            double t0 = now_s();
            while (i < opt.programs && !stop) {
                long n = opt.programs - i;
                if (opt.time_limit > 0) {
                    if (now_s() - start >= opt.time_limit) {
                        stop = true;
                        break;
                    }
                    if (n > opt.batch)
                        n = opt.batch;
                }
                long at;
                struct verdict v;
                run_programs(seed + (uint64_t)i, n, NULL, workers, opt.repeat,
                             &at, &v);
                if (at < 0) {
                    i += n;
                    continue;
                }
                struct mt_prog p;
                mt_generate(&p, seed + (uint64_t)(i + at), opt.features);
                report(&p, workers, &v);
                i += at + 1;
                if (nclasses >= opt.max_classes) {
                    printf("sl_model: %d distinct failures: stopping\n", nclasses);
                    stop = true;
                }
            }
            ran[w] += i;
            printf("workers=%d: %ld programs from seed %" PRIu64 " in %.1f s\n",
                   workers, i, seed, now_s() - t0);
        }
        seed += (uint64_t)opt.programs;
        if (opt.soak && opt.time_limit > 0 && now_s() - start >= opt.time_limit)
            stop = true;
    } while (opt.soak && !stop);
    long failures = 0;
    for (int i = 0; i < nclasses; i++)
        failures += classes[i].count;
    printf("sl_model: ");
    for (int w = 0; w < opt.nworkers; w++)
        printf("%s%ld on %d worker%s", w ? ", " : "", ran[w], opt.workers[w],
               opt.workers[w] > 1 ? "s" : "");
    printf(" in %.1f s; %ld failed, %d distinct\n", now_s() - start, failures,
           nclasses);
    for (int i = 0; i < nclasses; i++)
        printf("  %-60s workers=%d seed=%" PRIu64 " (%ld)\n", classes[i].sig,
               classes[i].workers, classes[i].seed, classes[i].count);
    if (opt.stats) {
        long total = 0;
        for (int w = 0; w < opt.nworkers; w++)
            total += ran[w];
        print_stats(total * opt.repeat);
    }
    return nclasses ? 1 : 0;
}
