/* trace_json.c - the trace's raw file (sched/trace.h) as Chrome Trace Event
 * JSON, for chrome://tracing and ui.perfetto.dev: made when a trace stops,
 * or by tools/stackless-trace from the raw file a dead program left.
 *
 * What the JSON holds (docs/trace.md): one thread track per worker
 * ("worker N"), a complete slice ("X") per run of a tasklet, named after
 * it, instants ("i") for spawn, block, wake, timer, io, kill, deadlock and
 * end, and a flow arrow ("s" to "f") from the slice of a tasklet that
 * completed a channel or sync wait to the next slice of the tasklet it
 * woke. An instant that ends a slice is placed a nanosecond inside it,
 * and a flow's end a nanosecond into the slice it enters, so that each
 * binds to its slice in both viewers. A track's times never go back (the
 * tick counters of two cores may differ a little). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/observe.h"
#include "sched/trace.h"

#define OUT_BYTES (1u << 20)
/* No writer makes a chunk bigger, in words (sched/trace.c's buffers are
 * 256 KiB). */
#define CHUNK_MAX (8u << 20)

/* The writer's view of a worker's track, and what its packed records are
 * relative to (sched/trace.h). */
struct track {
    uint64_t cur;   /* the tasklet whose slice is open (SL_TR_IDLE: none) */
    int64_t start;  /* its start, ns since the trace began                */
    int64_t last;   /* the latest time of an instant or flow written on
                       this track                                       */
    size_t seg;     /* where tick_ns last found this track's ticks       */
    uint64_t ts;    /* the tick of its last record                        */
    uint64_t addr;  /* the last address                                   */
    uint64_t idhi;  /* the high half of its ids, in place                 */
    uint32_t flows; /* flowed wakes read                                  */
    uint32_t flow;  /* the latest one's id                                */
};

/* One record unpacked: what the formatting below reads. */
struct rec {
    uint64_t ts;
    uint64_t a, b; /* SWITCH: from, to; BLOCK: the tasklet, the address;
                      WAKE: the woken, the address; SPAWN, KILL, NAME,
                      START: the tasklet                                 */
    uint32_t c;    /* SWITCH, WAKE: the flow (0: none); BLOCK: a timeout */
    uint8_t kind;  /* SL_TR_*, or BLOCK                                   */
    uint8_t x;     /* SWITCH: why; BLOCK: wkind; WAKE: cause              */
    uint16_t y;
    bool ends;     /* WAKE: the slice it is in ends at its time (its
                      switch follows)                                    */
};
enum { BLOCK = 16 }; /* a kind of its own here: a switch's wait */
/* Flow ids as the JSON has them: never 0. */
#define FLOW_TAG (1u << 24)

/* A (tick, ns) pair (a chunk's). */
struct anchor {
    uint64_t tick;
    int64_t ns;
};

struct name {
    uint64_t id; /* UINT64_MAX: empty */
    char s[32];
};

/* One conversion's state (one at a time: under trace.c's lock, or the
 * tool's only one). */
static struct {
    int out_fd, err, pid;
    bool use_ticks;
    int64_t ns0;
    struct anchor *anchors;
    size_t nanchors;
    struct track *tracks;
    uint32_t ntracks;
    struct name *names;
    size_t nnames, cap_names;
    char *out;
    size_t nout;
} cv;

static void out_flush(void)
{
    size_t off = 0;
    while (off < cv.nout && !cv.err) {
        ssize_t k = write(cv.out_fd, cv.out + off, cv.nout - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            cv.err = k < 0 ? -errno : -EIO;
        else
            off += (size_t)k;
    }
    cv.nout = 0;
}

/* Nanoseconds since the trace began for tick k: interpolated between the
 * pairs around it, searching from segment *seg (a track's ticks grow, so
 * the search is short). */
static int64_t tick_ns(uint64_t k, size_t *seg)
{
    if (!cv.use_ticks)
        return (int64_t)k - cv.ns0;
    const struct anchor *A = cv.anchors;
    size_t n = cv.nanchors, i = *seg;
    if (n < 2 || k <= A[0].tick)
        return 0;
    if (i < 1 || i >= n || A[i - 1].tick > k)
        i = 1;
    while (i < n - 1 && A[i].tick < k) /* the segment [A[i-1], A[i]] */
        i++;
    *seg = i;
    const struct anchor *p = &A[i - 1], *q = &A[i];
    double f = (double)(int64_t)(k - p->tick) / (double)(q->tick - p->tick);
    return p->ns + (int64_t)(f * (double)(q->ns - p->ns)) - cv.ns0;
}

/* The formatting below writes through a cursor p into cv.out and returns
 * the new cursor; room for one event (EV_MAX bytes) is made before each. */
#define EV_MAX 512
#define LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

static char *put_u64(char *p, uint64_t v)
{
    static const char pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";
    static const uint64_t pow10[20] = {
        1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
        10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
        100000000000ull, 1000000000000ull, 10000000000000ull,
        100000000000000ull, 1000000000000000ull, 10000000000000000ull,
        100000000000000000ull, 1000000000000000000ull,
        10000000000000000000ull};
    int n = 1;
    while (n < 20 && v >= pow10[n])
        n++;
    char *q = p + n;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        q[0] = pairs[2 * r];
        q[1] = pairs[2 * r + 1];
    }
    if (v >= 10) {
        q[-2] = pairs[2 * v];
        q[-1] = pairs[2 * v + 1];
    } else {
        q[-1] = (char)('0' + v);
    }
    return p + n;
}

static char *put_hex(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char t[16];
    int n = 0;
    do {
        t[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    p = LIT(p, "\"0x");
    while (n)
        *p++ = t[--n];
    *p++ = '"';
    return p;
}

/* ns as microseconds with three decimals. */
static char *put_us(char *p, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    p = put_u64(p, (uint64_t)ns / 1000);
    unsigned r = (unsigned)((uint64_t)ns % 1000);
    p[0] = '.';
    p[1] = (char)('0' + r / 100);
    p[2] = (char)('0' + r / 10 % 10);
    p[3] = (char)('0' + r % 10);
    return p + 4;
}

/* A JSON string's body (at most 31 bytes here): quotes, backslashes and
 * control bytes escaped. */
static char *put_str(char *p, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            p = LIT(p, "\\u00");
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

/* ---- names ---- */

static size_t name_slot(uint64_t id)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (cv.cap_names - 1);
}

static void name_set(uint64_t id, const char *s)
{
    if (cv.nnames * 2 >= cv.cap_names) {
        size_t cap = cv.cap_names ? 2 * cv.cap_names : 1024;
        struct name *old = cv.names, *p = malloc(cap * sizeof *p);
        if (!p)
            return; /* that tasklet shows by id */
        for (size_t i = 0; i < cap; i++)
            p[i].id = UINT64_MAX;
        size_t oldcap = cv.cap_names;
        cv.names = p;
        cv.cap_names = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].id != UINT64_MAX) {
                size_t j = name_slot(old[i].id);
                while (cv.names[j].id != UINT64_MAX)
                    j = (j + 1) & (cap - 1);
                cv.names[j] = old[i];
            }
        free(old);
    }
    size_t j = name_slot(id);
    while (cv.names[j].id != UINT64_MAX && cv.names[j].id != id)
        j = (j + 1) & (cv.cap_names - 1);
    if (cv.names[j].id == UINT64_MAX)
        cv.nnames++;
    cv.names[j].id = id;
    memcpy(cv.names[j].s, s, sizeof cv.names[j].s);
    cv.names[j].s[sizeof cv.names[j].s - 1] = '\0';
}

static const char *name_get(uint64_t id)
{
    if (!cv.nnames)
        return NULL;
    size_t j = name_slot(id);
    while (cv.names[j].id != UINT64_MAX) {
        if (cv.names[j].id == id)
            return cv.names[j].s[0] ? cv.names[j].s : NULL;
        j = (j + 1) & (cv.cap_names - 1);
    }
    return NULL;
}

/* ---- events ---- */

/* Every event of a track opens with the same bytes, made once:
 * `,\n{"pid":P,"tid":T,"ts":`. */
static char prefix[1024][48];
static uint8_t prefix_len[1024];

static void make_prefix(int wk)
{
    char *p = LIT(prefix[wk], ",\n{\"pid\":");
    p = put_u64(p, (uint64_t)cv.pid);
    p = LIT(p, ",\"tid\":");
    p = put_u64(p, (uint64_t)wk + 1);
    p = LIT(p, ",\"ts\":");
    prefix_len[wk] = (uint8_t)(p - prefix[wk]);
}

/* An event's opening: the prefix, the time, room checked. */
static char *ev_open(int wk, int64_t ns)
{
    if (cv.nout > OUT_BYTES - EV_MAX)
        out_flush();
    char *p = cv.out + cv.nout;
    memcpy(p, prefix[wk], sizeof prefix[wk]); /* (fixed size: one move) */
    return put_us(p + prefix_len[wk], ns);
}

static void ev_close(char *p)
{
    cv.nout = (size_t)(p - cv.out);
}

static char *put_tasklet_name(char *p, uint64_t id)
{
    const char *n = name_get(id);
    if (n) {
        p = put_str(p, n);
        *p++ = ' ';
    } else if (id == 0) {
        return LIT(p, "main");
    }
    *p++ = '#';
    return put_u64(p, id);
}

static void ev_slice(int wk, uint64_t id, int64_t start, int64_t end)
{
    char *p = ev_open(wk, start);
    p = LIT(p, ",\"ph\":\"X\",\"dur\":");
    p = put_us(p, end - start);
    p = LIT(p, ",\"name\":\"");
    p = put_tasklet_name(p, id);
    p = LIT(p, "\"}");
    ev_close(p);
}

/* An instant's opening, up to its first argument (the tasklet's id); the
 * caller adds more and closes with "}}". */
static inline __attribute__((always_inline)) char *
ev_instant(int wk, int64_t ns, const char *name, size_t len, uint64_t id)
{
    char *p = ev_open(wk, ns);
    p = LIT(p, ",\"ph\":\"i\",\"name\":\"");
    memcpy(p, name, len);
    p += len;
    p = LIT(p, "\",\"args\":{\"id\":");
    return put_u64(p, id);
}
#define INSTANT(wk, ns, name, id) ev_instant(wk, ns, name, sizeof name - 1, id)

static void ev_flow(int wk, int64_t ns, uint32_t id, bool end)
{
    char *p = ev_open(wk, ns);
    if (end)
        p = LIT(p, ",\"ph\":\"f\",\"bp\":\"e\",\"name\":\"wake\",\"id\":");
    else
        p = LIT(p, ",\"ph\":\"s\",\"name\":\"wake\",\"id\":");
    p = put_u64(p, id);
    *p++ = '}';
    ev_close(p);
}

static char *put_op(char *p, bool send)
{
    return send ? LIT(p, "\"send\"") : LIT(p, "\"receive\"");
}

static void fmt_block(int wk, const struct rec *r, int64_t ns)
{
    char *p = INSTANT(wk, ns, "block", r->a);
    switch (r->x) {
    case SL_W_CHAN:
        p = LIT(p, ",\"wait\":\"channel\",\"op\":");
        p = put_op(p, (int8_t)r->y > 0);
        p = LIT(p, ",\"ch\":");
        p = put_hex(p, r->b);
        break;
    case SL_W_SYNC:
        p = LIT(p, ",\"wait\":\"sync\",\"on\":");
        p = put_hex(p, r->b);
        break;
    case SL_W_SELECT:
        p = LIT(p, ",\"wait\":\"select\",\"cases\":");
        p = put_u64(p, r->y);
        break;
    case SL_W_SLEEP:
        p = LIT(p, ",\"wait\":\"sleep\"");
        break;
    case SL_W_FD:
        p = LIT(p, ",\"wait\":\"fd\",\"fd\":");
        p = put_u64(p, r->b);
        p = LIT(p, ",\"events\":");
        p = put_u64(p, r->y);
        break;
    case SL_W_OFFLOAD:
        p = LIT(p, ",\"wait\":\"offload\"");
        break;
    default:
        break;
    }
    if (r->c)
        p = LIT(p, ",\"timeout\":true");
    p = LIT(p, "}}");
    ev_close(p);
}

static void fmt_wake(int wk, const struct rec *r, int64_t ns)
{
    char *p;
    switch (r->x) {
    case SL_OBS_SEND:
    case SL_OBS_RECV:
        p = INSTANT(wk, ns, "wake", r->a);
        p = LIT(p, ",\"by\":");
        p = put_op(p, r->x == SL_OBS_SEND);
        p = LIT(p, ",\"ch\":");
        p = put_hex(p, r->b);
        if ((r->y & 0xff) == SL_W_SELECT)
            p = LIT(p, ",\"select\":true");
        break;
    case SL_OBS_SYNC:
        p = INSTANT(wk, ns, "wake", r->a);
        p = LIT(p, ",\"by\":\"sync\",\"on\":");
        p = put_hex(p, r->b);
        break;
    case SL_OBS_TIMER:
        p = INSTANT(wk, ns, "timer", r->a);
        if ((r->y & 0xff) == SL_W_SLEEP)
            p = LIT(p, ",\"by\":\"sleep\"");
        else
            p = LIT(p, ",\"by\":\"timeout\"");
        break;
    case SL_OBS_IO:
        p = INSTANT(wk, ns, "io", r->a);
        p = LIT(p, ",\"fd\":");
        p = put_u64(p, r->b);
        p = LIT(p, ",\"events\":");
        p = put_u64(p, r->y >> 8);
        break;
    case SL_OBS_KILL:
        p = INSTANT(wk, ns, "wake", r->a);
        p = LIT(p, ",\"by\":\"kill\"");
        break;
    default:
        p = INSTANT(wk, ns, "deadlock", r->a);
        break;
    }
    p = LIT(p, "}}");
    ev_close(p);
    if (r->c)
        ev_flow(wk, ns, r->c, false);
}

static void fmt_simple(int wk, int64_t ns, int kind, uint64_t id)
{
    char *p = kind == SL_TR_SPAWN  ? INSTANT(wk, ns, "spawn", id)
              : kind == SL_TR_KILL ? INSTANT(wk, ns, "kill", id)
                                   : INSTANT(wk, ns, "end", id);
    p = LIT(p, "}}");
    ev_close(p);
}

/* One unpacked record r of track wk, as JSON (name: a NAME's). */
static void format_rec(int wk, const struct rec *r, const char *name)
{
    struct track *t = &cv.tracks[wk];
    /* Not before the last event written on the track (tick counters of
     * two cores may differ a little, a coarse counter repeats). */
    int64_t ns = tick_ns(r->ts, &t->seg);
    if (ns < t->last)
        ns = t->last;
    /* An instant that ends a slice is placed inside it, if that does not
     * put it before the track's last event. */
    int64_t inside = ns - 1 > t->start && ns - 1 >= t->last ? ns - 1 : ns;
    t->last = ns;
    switch (r->kind) {
    case SL_TR_SWITCH:
        if (r->a != SL_TR_IDLE)
            ev_slice(wk, r->a, t->start, ns);
        if (r->x == SL_TR_WHY_END)
            fmt_simple(wk, inside, 0, r->a);
        t->cur = r->b;
        t->start = ns;
        if (r->c && r->b != SL_TR_IDLE) { /* inside the slice it binds */
            ev_flow(wk, ns + 1, r->c, true);
            t->last = ns + 1;
        }
        break;
    case BLOCK:
        fmt_block(wk, r, inside);
        break;
    case SL_TR_WAKE:
        fmt_wake(wk, r, r->ends ? inside : ns);
        break;
    case SL_TR_SPAWN:
    case SL_TR_KILL:
        fmt_simple(wk, ns, r->kind, r->a);
        break;
    case SL_TR_NAME:
        name_set(r->a, name);
        break;
    case SL_TR_START:
        t->cur = r->a;
        t->start = ns;
        break;
    case SL_TR_STOP:
        if (t->cur != SL_TR_IDLE)
            ev_slice(wk, t->cur, t->start, ns);
        t->cur = SL_TR_IDLE;
        break;
    default:
        break;
    }
}

/* A wait word's address: the word after it (far), or the difference
 * from the track's last one. */
static uint64_t wait_addr(struct track *t, uint64_t w, const uint64_t **pp)
{
    if (w & SL_TR_W_FAR)
        t->addr = *(*pp)++;
    else
        t->addr += (uint64_t)((int64_t)w >> 24);
    return t->addr;
}

/* Track wk's n words of records at p, as JSON. A record cut short (the
 * program died while its buffer was written) ends them; false if one is
 * not a trace's. */
static bool format(int wk, const uint64_t *p, size_t n)
{
    struct track *t = &cv.tracks[wk];
    const uint64_t *end = p + n;
    while (p < end) {
        uint64_t w0 = *p++;
        unsigned kind = SL_TR_KIND(w0), f = SL_TR_FLAGS(w0);
        uint64_t id = t->idhi | SL_TR_ID(w0);
        /* The words this record has after its first. */
        size_t more = kind == SL_TR_SWITCH
                          ? (SL_TR_F_FLOW(f) == SL_TR_FLOW_ID) +
                                ((f & SL_TR_F_FROM) != 0) +
                                (SL_TR_F_WHY(f) == SL_TR_WHY_BLOCK)
                      : kind == SL_TR_WAKE ? 1
                      : kind == SL_TR_NAME ? 4
                      : kind == SL_TR_TIME ? 1
                                           : 0;
        if ((size_t)(end - p) < more)
            return true;
        /* (a wait word with its address in the next word: one more) */
        const uint64_t *wp = kind == SL_TR_WAKE ? p
                             : kind == SL_TR_SWITCH &&
                                     SL_TR_F_WHY(f) == SL_TR_WHY_BLOCK
                                 ? p + more - 1
                                 : NULL;
        if (wp && (*wp & SL_TR_W_FAR) && (size_t)(end - p) < more + 1)
            return true;
        if (kind == SL_TR_TIME) {
            t->ts = *p++;
            continue;
        }
        if (kind == SL_TR_IDHI) {
            t->idhi = SL_TR_ID(w0) << 32;
            continue;
        }
        struct rec r = {t->ts + SL_TR_DT(w0), 0, 0, 0, (uint8_t)kind, 0, 0,
                        false};
        t->ts = r.ts;
        char name[32];
        switch (kind) {
        case SL_TR_SWITCH: {
            r.a = t->cur;
            r.b = f & SL_TR_F_TO_IDLE ? SL_TR_IDLE : id;
            r.x = (uint8_t)SL_TR_F_WHY(f);
            unsigned fl = SL_TR_F_FLOW(f);
            if (fl == SL_TR_FLOW_ID)
                r.c = (uint32_t)(*p++ & SL_TR_FLOW_MASK) | FLOW_TAG;
            else if (fl == SL_TR_FLOW_LAST)
                r.c = t->flow | FLOW_TAG;
            else if (fl != SL_TR_FLOW_NONE)
                return false;
            if (f & SL_TR_F_FROM)
                r.a = *p++;
            if (r.x == SL_TR_WHY_BLOCK) {
                uint64_t w = *p++;
                struct rec b = {r.ts, r.a, wait_addr(t, w, &p),
                                (w & SL_TR_W_TIMEOUT) != 0, BLOCK,
                                (uint8_t)(w & 0xf), (uint16_t)(w >> 8),
                                false};
                format_rec(wk, &b, NULL);
            }
            break;
        }
        case SL_TR_WAKE: {
            uint64_t w = *p++;
            r.a = id;
            r.b = wait_addr(t, w, &p);
            r.x = (uint8_t)(f & 7);
            r.y = (uint16_t)(w >> 8);
            if (r.x == SL_OBS_SEND || r.x == SL_OBS_RECV ||
                r.x == SL_OBS_SYNC) { /* a partner's wake: a flow */
                t->flow = (t->flows++ * cv.ntracks + (uint32_t)wk) &
                          SL_TR_FLOW_MASK;
                r.c = t->flow | FLOW_TAG;
            }
            if (f & SL_TR_F_SWITCHED) { /* and the switch to it */
                r.ends = true;
                format_rec(wk, &r, NULL);
                r = (struct rec){r.ts, t->cur, id, r.c, SL_TR_SWITCH,
                                 SL_TR_WHY_YIELD, 0, false};
            }
            break;
        }
        case SL_TR_SPAWN:
        case SL_TR_KILL:
            r.a = id;
            break;
        case SL_TR_START:
            r.a = f & 1 ? SL_TR_IDLE : id;
            break;
        case SL_TR_NAME:
            r.a = id;
            memcpy(name, p, sizeof name);
            name[sizeof name - 1] = '\0';
            p += sizeof name / sizeof *p;
            break;
        case SL_TR_STOP:
            break;
        default:
            return false;
        }
        format_rec(wk, &r, name);
    }
    return true;
}

/* The header: the array's opening, the process and one thread per
 * worker. */
static void header(const struct sl_trace_head *h)
{
    char comm[sizeof h->comm + 1];
    memcpy(comm, h->comm, sizeof h->comm);
    comm[sizeof h->comm] = '\0';
    char *p = cv.out;
    p = LIT(p, "[\n{\"ph\":\"M\",\"pid\":");
    p = put_u64(p, (uint64_t)cv.pid);
    p = LIT(p, ",\"name\":\"process_name\",\"args\":{\"name\":\"stackless ");
    p = put_str(p, comm);
    p = LIT(p, "\"}}");
    cv.nout = (size_t)(p - cv.out);
    for (uint32_t i = 0; i < cv.ntracks; i++) {
        make_prefix((int)i);
        for (int k = 0; k < 2; k++) {
            p = ev_open((int)i, 0);
            p = k == 0 ? LIT(p, ",\"ph\":\"M\",\"name\":\"thread_name\","
                                "\"args\":{\"name\":\"worker ")
                       : LIT(p, ",\"ph\":\"M\",\"name\":\"thread_sort_index\","
                                "\"args\":{\"sort_index\":");
            p = put_u64(p, i);
            p = k == 0 ? LIT(p, "\"}}") : LIT(p, "}}");
            ev_close(p);
        }
    }
}

/* read(2) of exactly n bytes: 1, 0 at the end of the file (or a piece
 * cut short), or -errno. */
static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return 0;
        got += (size_t)k;
    }
    return 1;
}

/* The chunks' pairs, in file order (the first pass). */
static int read_anchors(int raw, const struct sl_trace_head *h)
{
    size_t cap = 1024;
    cv.anchors = malloc(cap * sizeof *cv.anchors);
    if (!cv.anchors)
        return SL_ENOMEM;
    cv.anchors[0] = (struct anchor){h->tick0, h->ns0};
    cv.nanchors = 1;
    for (;;) {
        struct sl_trace_chunk c;
        int rc = read_full(raw, &c, sizeof c);
        if (rc <= 0)
            return rc;
        if (c.magic != SL_TRACE_CHUNK_MAGIC)
            return SL_EINVAL;
        if (lseek(raw, (off_t)c.n * (off_t)sizeof(uint64_t), SEEK_CUR) < 0)
            return -errno;
        struct anchor *l = &cv.anchors[cv.nanchors - 1];
        if (c.tick <= l->tick || c.ns <= l->ns)
            continue; /* no progress to measure a rate with */
        if (cv.nanchors == cap) {
            cap *= 2;
            struct anchor *a = realloc(cv.anchors, cap * sizeof *a);
            if (!a)
                return SL_ENOMEM;
            cv.anchors = a;
        }
        cv.anchors[cv.nanchors++] = (struct anchor){c.tick, c.ns};
    }
}

int sl__trace_convert(int raw, int json)
{
    struct sl_trace_head h;
    uint64_t *recs = NULL;
    memset(&cv, 0, sizeof cv);
    cv.out_fd = json;
    int rc = read_full(raw, &h, sizeof h);
    if (rc <= 0 || memcmp(h.magic, SL_TRACE_MAGIC, sizeof h.magic) != 0 ||
        h.nworkers == 0 || h.nworkers > 1024) {
        rc = rc < 0 ? rc : SL_EINVAL;
        goto out;
    }
    cv.pid = h.pid;
    cv.use_ticks = h.use_ticks != 0;
    cv.ns0 = h.ns0;
    cv.ntracks = h.nworkers;
    if ((rc = read_anchors(raw, &h)) < 0 ||
        lseek(raw, (off_t)sizeof h, SEEK_SET) < 0) {
        rc = rc < 0 ? rc : -errno;
        goto out;
    }
    size_t cap = 2048;
    cv.out = malloc(OUT_BYTES);
    cv.tracks = calloc(cv.ntracks, sizeof *cv.tracks);
    recs = malloc(cap * sizeof *recs);
    if (!cv.out || !cv.tracks || !recs) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < cv.ntracks; i++)
        cv.tracks[i] = (struct track){.cur = SL_TR_IDLE, .seg = 1,
                                      .ts = h.tick0};
    header(&h);
    for (;;) {
        struct sl_trace_chunk c;
        if ((rc = read_full(raw, &c, sizeof c)) <= 0)
            break;
        if (c.magic != SL_TRACE_CHUNK_MAGIC || c.worker < 0 ||
            (uint32_t)c.worker >= cv.ntracks || c.n > CHUNK_MAX) {
            rc = SL_EINVAL;
            break;
        }
        if (c.n > cap) {
            uint64_t *r = realloc(recs, c.n * sizeof *r);
            if (!r) {
                rc = SL_ENOMEM;
                break;
            }
            recs = r;
            cap = c.n;
        }
        size_t bytes = (size_t)c.n * sizeof *recs;
        ssize_t got = 0;
        while ((size_t)got < bytes) { /* a chunk cut short: what is whole */
            ssize_t k = read(raw, (char *)recs + got, bytes - (size_t)got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            got += k;
        }
        if (!format(c.worker, recs, (size_t)got / sizeof *recs)) {
            rc = SL_EINVAL;
            break;
        }
        if ((size_t)got < bytes || cv.err)
            break;
    }
    if (rc >= 0) { /* tracks a dead program left open end at their last */
        for (uint32_t i = 0; i < cv.ntracks; i++) {
            struct track *t = &cv.tracks[i];
            if (t->cur != SL_TR_IDLE)
                ev_slice((int)i, t->cur, t->start, t->last);
        }
        if (cv.nout > OUT_BYTES - 8)
            out_flush();
        char *p = cv.out + cv.nout;
        p = LIT(p, "\n]\n");
        ev_close(p);
        out_flush();
        rc = cv.err;
    }
out:
    free(recs);
    free(cv.anchors);
    free(cv.tracks);
    free(cv.names);
    free(cv.out);
    memset(&cv, 0, sizeof cv);
    return rc;
}
