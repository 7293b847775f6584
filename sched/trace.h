/* trace.h - the trace's raw file (private): what the workers write while
 * the program runs (sched/trace.c) and what becomes Chrome Trace Event
 * JSON when the trace stops (sched/trace_json.c), or afterwards with
 * tools/stackless-trace.c if the program died first.
 *
 * Layout, in the byte order of the machine that wrote it:
 *   struct sl_trace_head
 *   chunks: struct sl_trace_chunk, then its n words of records, one
 *   worker's buffer each, in the order they were written. A chunk carries
 *   a (tick, CLOCK_MONOTONIC) pair read when it was written, after every
 *   record in it: pairs are in file order, and the ticks of its records
 *   are all older than its pair.
 *
 * A record is one to six 64-bit words, because writing records is most of
 * what a trace costs a busy program (docs/trace.md): small enough that the
 * bytes cost little, made with a few shifts and one or two stores. Its
 * first word holds
 *   bits 0-3 the kind, 4-9 its flags, 10-31 dt, 32-63 an id's low half
 * where dt is the record's tick minus the previous record's of the same
 * worker (the first's: minus the head's tick0). A dt that does not fit
 * (more than about a millisecond) is preceded by a TIME record, after
 * which the ticks count from its tick. An id whose high half is not the
 * worker's current one is preceded by an IDHI record. An address is coded
 * as the difference from the worker's previous address (a block's or a
 * wake's) in 40 bits, which holds it but across more than 512 GiB of
 * address space (then a word with the address follows). What a reader
 * carries from one record to the next, per worker, across chunks: the
 * tick, the id's high half, the address, the tasklet running (the last
 * switch's or START's), and the count of flowed wakes.
 *
 *   SWITCH  flags: why (2 bits: SL_TR_WHY_*), flow (2: 0 none, 1 a word
 *           with the flow id follows, 2 the worker's latest flow), from
 *           (the tasklet left is not the one running: a word with its full
 *           id follows), to_idle (to is the idle context; the id is 0).
 *           id: to. With why BLOCK, a wait word follows (below).
 *   WAKE    flags: cause (enum sl_obs_cause, 3 bits), switched (the
 *           worker's running tasklet yields to the woken one at this
 *           tick: the switch is this record too, the woken's flow ends
 *           there). id: the woken. A wait word follows. A wake by a
 *           partner (SEND, RECV, SYNC) starts a flow: the n-th of a
 *           worker's (from 0) has id (n * nworkers + worker) mod 2^24.
 *   SPAWN, KILL  id: the tasklet.
 *   NAME    id: the tasklet; four words of name follow (NUL-padded).
 *   START   id: the tasklet running when the trace began (flags: 1, the
 *           idle context).
 *   STOP    the trace ends, the open slice closes.
 *   TIME    a word with the absolute tick follows.
 *   IDHI    the high half of the ids that follow in bits 32-63.
 * A wait word: bits 0-3 the wait's kind (enum sl_wkind), 4 a timeout, 5
 * the address is in a word after this one, 8-23 y (block: channel 1
 * send, 0xff receive; select: its cases; fd: its events; wake: the wait's
 * kind, and the ready events << 8 for a descriptor), 24-63 the address's
 * difference (a channel or wait queue's address; a descriptor's number). */
#ifndef SL_TRACE_H
#define SL_TRACE_H

#include <stdint.h>

#define SL_TRACE_MAGIC "SLTRACE2"
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
    uint32_t n;         /* words (uint64_t) of records that follow    */
    uint32_t pad;
    uint64_t tick;      /* a pair read after its records              */
    int64_t ns;
};

/* Record kinds. */
enum {
    SL_TR_SWITCH = 1,
    SL_TR_WAKE,
    SL_TR_SPAWN,
    SL_TR_KILL,
    SL_TR_NAME,
    SL_TR_START,
    SL_TR_STOP,
    SL_TR_TIME,
    SL_TR_IDHI,
};
enum { SL_TR_WHY_YIELD = 0, SL_TR_WHY_BLOCK, SL_TR_WHY_PAUSE, SL_TR_WHY_END };
enum { SL_TR_FLOW_NONE = 0, SL_TR_FLOW_ID, SL_TR_FLOW_LAST };
/* A first word's fields. */
#define SL_TR_KIND(w) ((unsigned)(w) & 0xf)
#define SL_TR_FLAGS(w) ((unsigned)((w) >> 4) & 0x3f)
#define SL_TR_DT_BITS 22
#define SL_TR_DT(w) (((w) >> 10) & ((1u << SL_TR_DT_BITS) - 1))
#define SL_TR_ID(w) ((w) >> 32)
/* SWITCH's flags. */
#define SL_TR_F_WHY(f) ((f) & 3)
#define SL_TR_F_FLOW(f) (((f) >> 2) & 3)
#define SL_TR_F_FROM 0x10
#define SL_TR_F_TO_IDLE 0x20
/* WAKE's flags: the cause, and */
#define SL_TR_F_SWITCHED 0x8
/* A wait word's fields. */
#define SL_TR_W_TIMEOUT 0x10
#define SL_TR_W_FAR 0x20
#define SL_TR_ADDR_BITS 40
/* The most words one append writes: a record (at most 5 words: a switch
 * with a flow id, a from, a wait word and a far address; a NAME is 5) and
 * the escapes before it (TIME 2, IDHI 1), after a track's first START
 * (its own escapes and itself: 4) = 12. */
#define SL_TR_REC_MAX 12
/* The id the trace gives a worker's idle context (no tasklet). */
#define SL_TR_IDLE UINT64_MAX
/* Flow ids are this wide. */
#define SL_TR_FLOW_MASK 0xffffffu

/* Turn the raw trace read from raw (at its start) into JSON written to
 * json. 0; SL_EINVAL if raw is not a trace; -errno if reading or writing
 * fails. A file cut short (the program died while writing it) converts up
 * to its last whole record, every track ending at its last event. */
int sl__trace_convert(int raw, int json);

#endif /* SL_TRACE_H */
