/* trace.h - the trace's raw file (private): what the workers write while
 * the program runs (sched/trace.c) and what becomes Chrome Trace Event
 * JSON when the trace stops (sched/trace_json.c), or afterwards with
 * tools/stackless-trace.c if the program died first.
 *
 * Layout, in the byte order of the machine that wrote it:
 *   struct sl_trace_head
 *   chunks: struct sl_trace_chunk, then its n records (struct
 *   sl_trace_rec), one worker's buffer each, in the order they were
 *   written. A chunk carries a (tick, CLOCK_MONOTONIC) pair read when it
 *   was written, after every record in it: pairs are in file order, and
 *   the ticks of its records are all older than its pair. */
#ifndef SL_TRACE_H
#define SL_TRACE_H

#include <stdint.h>

#define SL_TRACE_MAGIC "SLTRACE1"
#define SL_TRACE_CHUNK_MAGIC 0x4b43534cu /* "LSCK" */

struct sl_trace_head {
    char magic[8];
    uint32_t nworkers;
    int32_t pid;
    uint32_t use_ticks; /* 1: ticks are the CPU's counter; 0: ns      */
    uint32_t pad;
    int64_t ns0;        /* CLOCK_MONOTONIC when the trace began      */
    uint64_t tick0;     /* the tick read with it                     */
    char comm[32];      /* the program's name                         */
};

struct sl_trace_chunk {
    uint32_t magic;
    int32_t worker;
    uint32_t n;         /* records that follow                        */
    uint32_t pad;
    uint64_t tick;      /* a pair read after its records              */
    int64_t ns;
};

/* One record: what a worker did, stamped with its tick counter. */
struct sl_trace_rec {
    uint64_t ts;
    uint64_t a, b;
    uint32_t c;
    uint8_t kind, x;
    uint16_t y;
};
_Static_assert(sizeof(struct sl_trace_rec) == 32, "a record is 32 bytes");

/* Record kinds, and what their fields hold. */
enum {
    SL_TR_SWITCH = 1, /* a: from (tasklet id), b: to, c: the flow `to` was
                         woken by (0: none), x: why from left (WHY_*)     */
    SL_TR_BLOCK,      /* a: id, b: what it waits on (a channel or wait
                         queue's address, a descriptor), x: enum sl_wkind,
                         y: dir (channel: 1 send, 0xff receive), events
                         (fd) or cases (select), c: 1 with a timeout     */
    SL_TR_WAKE,       /* a: woken, b: channel, wait queue or fd, x: enum
                         sl_obs_cause, c: flow (0: none), y: wkind of the
                         wait, and the ready events << 8 (fd)           */
    SL_TR_SPAWN,      /* a: the new tasklet                               */
    SL_TR_KILL,       /* a: the tasklet killed                            */
    SL_TR_NAME,       /* a: id; the next record holds its name (32 bytes) */
    SL_TR_START,      /* a: the worker's current tasklet when it began    */
    SL_TR_STOP,       /* the trace ends: close the track's open slice     */
};
enum { SL_TR_WHY_YIELD = 0, SL_TR_WHY_BLOCK, SL_TR_WHY_PAUSE, SL_TR_WHY_END };
/* The id the trace gives a worker's idle context (no tasklet). */
#define SL_TR_IDLE UINT64_MAX

/* Turn the raw trace read from raw (at its start) into JSON written to
 * json. 0; SL_EINVAL if raw is not a trace; -errno if reading or writing
 * fails. A file cut short (the program died while writing it) converts up
 * to its last whole record, every track ending at its last event. */
int sl__trace_convert(int raw, int json);

#endif /* SL_TRACE_H */
