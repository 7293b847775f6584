# stackless-gdb.py - gdb commands for programs built on the stackless
# runtime: where every tasklet is, and the backtrace of one that is
# switched out (Go's runtime-gdb.py does the same for goroutines).
#
#   info tasklets               id, name, state, worker, what it waits on
#   tasklet bt ID               the backtrace of tasklet ID
#   tasklet apply all|ID... CMD run a gdb command (bt, info locals...) in
#                               each tasklet's context
#
# It reads the runtime's structures through their debug information (the
# library is always built with -g), so it follows their layout; what it
# does hard-code is the saved context's layout, boost.context's
# jump_fcontext on each CPU (arch/arch.h's table). A switched-out tasklet's
# registers are put into the current thread for the command and put back
# after it; a copy-mode tasklet's saved frames are copied onto its
# worker's shared stack the same way. That needs a live process: on a core
# file, the list works and backtraces of switched-out tasklets do not.
#
# Loading: the library embeds this file in every program (the
# .debug_gdb_scripts section), which gdb runs if `auto-load safe-path`
# allows the program:  gdb -iex 'add-auto-load-safe-path /path/to/prog'.
# Or by hand: (gdb) source PREFIX/lib/stackless-gdb.py
# docs/trace.md has an example session.

import time

import gdb

# The saved context of each CPU: where jump_fcontext leaves the callee-
# saved registers, the resume address, and the stack pointer's value once
# resumed (offsets from the context pointer).
CONTEXTS = {
    "x86-64": {
        "regs": {"r12": 0x08, "r13": 0x10, "r14": 0x18, "r15": 0x20,
                 "rbx": 0x28, "rbp": 0x30},
        "pc": 0x38, "sp": "rsp", "sp_after": 0x40,
    },
    "aarch64": {
        "regs": dict([("x%d" % (19 + i), 0x40 + 8 * i) for i in range(10)] +
                     [("x29", 0x90), ("x30", 0x98)]),
        "pc": 0xa0, "sp": "sp", "sp_after": 0xb0,
    },
}


def arch_context():
    name = gdb.selected_frame().architecture().name()
    if "x86-64" in name:
        return CONTEXTS["x86-64"]
    if "aarch64" in name:
        return CONTEXTS["aarch64"]
    raise gdb.GdbError("stackless: no context layout for %s" % name)


def enum_names(type_name):
    """{value: name} of an enum, from the debug information."""
    t = gdb.lookup_type(type_name)
    return {int(f.enumval): f.name for f in t.fields()}


def runtime():
    rt = gdb.parse_and_eval("sl__rt")
    if int(rt["nworkers"]) == 0 or int(rt["workers"]) == 0:
        raise gdb.GdbError("stackless: no runtime (sl_init not called yet, "
                           "or sl_shutdown called)")
    return rt


def workers(rt):
    return [rt["workers"][i] for i in range(int(rt["nworkers"]))]


def slab_blocks(w):
    """Every block of worker w's slab (tasklet/tasklet.c: chunks of
    blocks, the first block one cache line after the chunk's header)."""
    ttype = gdb.lookup_type("struct sl_tasklet")
    chunk_t = gdb.lookup_type("struct slab_chunk").pointer()
    first = ttype.alignof if hasattr(ttype, "alignof") else 64
    c = w["slab"]["chunks"].cast(chunk_t)
    while int(c):
        n = (int(c["bytes"]) - first) // ttype.sizeof
        base = int(c) + first
        for i in range(n):
            yield gdb.Value(base + i * ttype.sizeof).cast(ttype.pointer())
        c = c["next"].cast(chunk_t)


def tasklets():
    """Every live tasklet: main, then each worker's slab."""
    rt = runtime()
    state = enum_names("enum sl_tstate")
    out = [rt["main"]]
    for w in workers(rt):
        for t in slab_blocks(w):
            s = state.get(int(t["state"]), "?")
            if s not in ("SL_T_FREE", "SL_T_DEAD"):
                out.append(t)
    return out


def find(tid):
    for t in tasklets():
        if int(t["id"]) == tid:
            return t
    raise gdb.GdbError("stackless: no live tasklet #%d" % tid)


def name_of(t):
    n = t["name"].string(length=32).split("\0")[0]
    return n or ("main" if int(t["is_main"]) else "-")


def running_on(t):
    """The worker whose current tasklet t is, or None."""
    for w in workers(runtime()):
        if int(w["current"]) == int(t):
            return w
    return None


def state_of(t):
    """What sl_dump says (tasklet/tasklet.c)."""
    if running_on(t) is not None:
        return "running"
    s = enum_names("enum sl_tstate").get(int(t["state"]), "?")
    if s in ("SL_T_RUNNABLE", "SL_T_INBOX"):
        return "runnable" if int(t["ctx"]) else "new"
    if s in ("SL_T_PAUSED", "SL_T_SWITCHING"):
        return "paused"
    if s != "SL_T_BLOCKED":
        return s.lower()
    k = enum_names("enum sl_wkind").get(int(t["wkind"]), "?")
    return {"SL_W_CHAN": "blocked-send" if int(t["wait"]["dir"]) > 0
            else "blocked-receive",
            "SL_W_SELECT": "selecting", "SL_W_SYNC": "waiting",
            "SL_W_SLEEP": "sleeping", "SL_W_FD": "waiting-fd",
            "SL_W_OFFLOAD": "offloaded"}.get(k, "blocked")


def timer_of(t):
    """The deadline (CLOCK_MONOTONIC ns) of t's current wait, if a timer
    on the worker it waits on holds one (sched/event.c's heap)."""
    w = t["wait_w"]
    if not int(w):
        return None
    for i in range(int(w["ntimers"])):
        e = w["timers"][i]
        if int(e["t"]) == int(t) and int(e["gen"]) == int(t["wseq"]):
            return int(e["when"])
    return None


def waits_on(t):
    if state_of(t) not in ("blocked-send", "blocked-receive", "selecting",
                           "waiting", "sleeping", "waiting-fd",
                           "offloaded"):
        return ""
    k = enum_names("enum sl_wkind").get(int(t["wkind"]), "?")
    wt = t["wait"]
    if k == "SL_W_CHAN":
        q = wt["q"]
        what = "channel 0x%x (%s, balance %d)" % (
            int(q), "send" if int(wt["dir"]) > 0 else "receive",
            int(q["balance"])) if int(q) else "channel"
    elif k == "SL_W_SYNC":
        what = "wait queue 0x%x" % int(wt["q"])
    elif k == "SL_W_SELECT":
        n = int(t["wn"])
        chans = ["0x%x" % int(t["wv"][i]["q"]) for i in range(n)
                 if int(t["wv"][i]["q"])]
        what = "select of %d cases: %s" % (n, ", ".join(chans))
    elif k == "SL_W_FD":
        ev = int(wt["value"])
        what = "fd %d (%s)" % (int(wt["result"]), "/".join(
            n for b, n in ((1, "readable"), (2, "writable")) if ev & b))
    elif k == "SL_W_OFFLOAD":
        what = "an offloaded call"
    else:
        what = "sleep"
    when = timer_of(t)
    if when is not None:  # (a live process: the same clock as ours)
        left = (when - time.clock_gettime_ns(time.CLOCK_MONOTONIC)) / 1e6
        what += ", timer: %s" % ("%.0f ms left" % left if left >= 0
                                 else "due")
    return what


class InfoTasklets(gdb.Command):
    """List the tasklets of the stackless runtime: id, name, state, the
worker whose queue has it, and what a blocked one waits on (a channel, a
wait queue, a timer, a descriptor). The running ones are marked *."""

    def __init__(self):
        super().__init__("info tasklets", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        rows = []
        for t in tasklets():
            w = t["worker"]
            rows.append(("*" if running_on(t) is not None else " ",
                         int(t["id"]), name_of(t), state_of(t),
                         int(w["index"]) if int(w) else -1, waits_on(t)))
        gdb.write("  %4s %-20s %-16s %6s  %s\n" %
                  ("Id", "Name", "State", "Worker", "Waits on"))
        for r in rows:
            gdb.write("%s %4d %-20s %-16s %6d  %s\n" % r)


def thread_running(w):
    """The gdb thread of worker w: the one whose sl__tls_worker is w."""
    cur = gdb.selected_thread()
    try:
        for th in gdb.selected_inferior().threads():
            th.switch()
            try:
                if int(gdb.parse_and_eval("sl__tls_worker")) == int(w):
                    return th
            except gdb.error:
                pass
    finally:
        cur.switch()
    return None


class Context:
    """Runs commands as if switched-out tasklet t were running in the
    current thread: its saved registers (and, copy mode, its frames on the
    shared stack) in place, everything put back afterwards."""

    def __init__(self, t):
        self.t = t

    def __enter__(self):
        t = self.t
        ctx = int(t["ctx"])
        if not ctx:
            raise gdb.GdbError("tasklet #%d has not run yet: no frames"
                               % int(t["id"]))
        if enum_names("enum sl_tstate").get(int(t["state"])) == \
                "SL_T_SWITCHING":
            raise gdb.GdbError("tasklet #%d is being switched: its context "
                               "is not saved yet" % int(t["id"]))
        gdb.execute("frame 0", to_string=True)
        inf = gdb.selected_inferior()
        self.mem = None
        if int(t["copy"]):
            w = runtime()["workers"][int(t["pin"])]
            cs = w["copy"]
            top = int(cs["top"])
            if int(cs["owner"]) != int(t) and int(t["saved"]):
                # Its frames are in its buffer: put them where they ran.
                n = top - ctx
                self.mem = (ctx, bytes(inf.read_memory(ctx, n)))
                inf.write_memory(ctx, inf.read_memory(int(t["saved"]), n))
        lay = arch_context()
        word = gdb.lookup_type("unsigned long")
        read = lambda off: int(gdb.Value(ctx + off).cast(
            word.pointer()).dereference())
        values = {r: read(off) for r, off in lay["regs"].items()}
        values["pc"] = read(lay["pc"])
        values[lay["sp"]] = ctx + lay["sp_after"]
        self.saved = {r: int(gdb.parse_and_eval("$" + r)) for r in values}
        for r, v in values.items():
            gdb.execute("set $%s = %d" % (r, v), to_string=True)
        return self

    def __exit__(self, *exc):
        for r, v in self.saved.items():
            gdb.execute("set $%s = %d" % (r, v), to_string=True)
        if self.mem:
            gdb.selected_inferior().write_memory(self.mem[0], self.mem[1])
        return False


def run_in(t, cmd):
    gdb.write("Tasklet #%d '%s' (%s):\n" % (int(t["id"]), name_of(t),
                                           state_of(t)))
    w = running_on(t)
    if w is not None:  # its registers are its thread's own
        th = thread_running(w)
        if th is None:
            gdb.write("  running on worker %d: see `thread apply all bt`\n"
                      % int(w["index"]))
            return
        cur = gdb.selected_thread()
        th.switch()
        try:
            gdb.execute(cmd)
        finally:
            cur.switch()
        return
    try:
        with Context(t):
            gdb.execute(cmd)
    except gdb.GdbError as e:
        gdb.write("  %s\n" % e)


class TaskletPrefix(gdb.Command):
    """Commands for the stackless runtime's tasklets: tasklet bt ID,
tasklet apply all|ID... COMMAND."""

    def __init__(self):
        super().__init__("tasklet", gdb.COMMAND_STACK, prefix=True)


class TaskletBt(gdb.Command):
    """tasklet bt ID: the backtrace of tasklet ID (from its saved context if
it is switched out)."""

    def __init__(self):
        super().__init__("tasklet bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        if not arg.strip().isdigit():
            raise gdb.GdbError("usage: tasklet bt ID")
        run_in(find(int(arg)), "bt")


class TaskletApply(gdb.Command):
    """tasklet apply all|ID... COMMAND: run COMMAND (bt, info locals, ...)
in the context of every tasklet, or of those listed."""

    def __init__(self):
        super().__init__("tasklet apply", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split()
        ids = []
        while words and (words[0] == "all" or words[0].isdigit()):
            ids.append(words.pop(0))
        if not ids or not words:
            raise gdb.GdbError("usage: tasklet apply all|ID... COMMAND")
        cmd = " ".join(words)
        ts = tasklets() if "all" in ids else [find(int(i)) for i in ids]
        for t in ts:
            run_in(t, cmd)
            gdb.write("\n")


InfoTasklets()
TaskletPrefix()
TaskletBt()
TaskletApply()
