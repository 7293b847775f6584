#!/usr/bin/env python3
"""trace_check.py - runs tests/trace_pingpong.c with SL_TRACE set and checks
the JSON it leaves (docs/trace.md says what it holds):

  - it parses, and names the process and one track per worker;
  - on each track the slices do not overlap and come in time order, and
    every other event's time is not before the one before it;
  - every instant and flow end lies inside a slice of its track;
  - every channel hand-over is one "wake" naming the channel and the side
    that completed it, whose tasklet last blocked on that channel on the
    other side: every send is matched by a receive, ROUNDS on each channel;
  - every flow has one start and one end, the end not before the start, in
    a slice of the tasklet the wake at the start names;
  - two spawns, two ends, slices of "ping" and "pong".

usage: trace_check.py TRACE_PINGPONG ROUNDS WORKERS [EMULATOR...]
(EMULATOR: what runs a cross-built program, e.g. qemu-aarch64-static)
Exit status 0 when every check holds; each failure is printed."""
import json
import os
import re
import subprocess
import sys
import tempfile

EPS = 0.0005  # microseconds: the JSON has three decimals (nanoseconds)


def main():
    prog, rounds, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    emulator = sys.argv[4:]
    fails = []

    def check(ok, what):
        if not ok:
            fails.append(what)
        return ok

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pingpong.json")
        env = dict(os.environ, SL_TRACE=path)
        out = subprocess.run(emulator + [prog, str(rounds), str(workers)],
                             env=env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            print("trace_check: the program failed:", out.stderr)
            return 1
        m = re.search(r"a=(0x[0-9a-f]+) b=(0x[0-9a-f]+)", out.stdout)
        chans = {m.group(1): "a", m.group(2): "b"}
        check(not os.path.exists(path + ".raw"), "the raw file is left")
        with open(path) as f:
            events = json.load(f)

    # The process and its tracks.
    meta = [e for e in events if e["ph"] == "M"]
    names = {e["tid"]: e["args"]["name"] for e in meta
             if e["name"] == "thread_name"}
    check(any(e["name"] == "process_name" for e in meta), "no process name")
    check(names == {w + 1: "worker %d" % w for w in range(workers)},
          "track names %r" % names)

    # Per track: slices in order and apart, other events in time order.
    slices = {}
    last = {}
    for e in events:
        if e["ph"] == "M":
            continue
        tid, ts = e["tid"], e["ts"]
        if e["ph"] == "X":
            check(e["dur"] >= 0, "a slice of negative length: %r" % e)
            s = slices.setdefault(tid, [])
            if s:
                p = s[-1]
                check(p["ts"] + p["dur"] <= ts + EPS,
                      "slices overlap on track %d: %r %r" % (tid, p, e))
            s.append(e)
        else:
            check(ts >= last.get(tid, 0) - EPS,
                  "time goes back on track %d at %r" % (tid, e))
            last[tid] = ts

    def slice_at(tid, ts):
        for s in slices.get(tid, []):
            if s["ts"] - EPS <= ts <= s["ts"] + s["dur"] + EPS:
                return s
        return None

    def tasklet_of(s):
        return int(s["name"].rsplit("#", 1)[1]) if "#" in s["name"] else 0

    for e in events:
        if e["ph"] in ("i", "s", "f"):
            check(slice_at(e["tid"], e["ts"]) is not None,
                  "an event outside every slice: %r" % e)

    # Ids of ping and pong from their slices' names.
    ids = {}
    for s in (x for v in slices.values() for x in v):
        for who in ("ping", "pong"):
            if s["name"].startswith(who + " #"):
                ids[who] = tasklet_of(s)
    if not check(set(ids) == {"ping", "pong"}, "no ping or pong slice"):
        return report(fails)

    inst = [e for e in events if e["ph"] == "i"]
    count = lambda n: sum(1 for e in inst if e["name"] == n)
    check(count("spawn") == 2, "spawns: %d" % count("spawn"))
    check(count("end") == 2, "ends: %d" % count("end"))
    check(sorted(e["args"]["id"] for e in inst if e["name"] == "spawn") ==
          sorted(ids.values()), "spawned are not ping and pong")

    # Every hand-over: the woken one last blocked on that channel on the
    # other side (in time order over all tracks).
    other = {"send": "receive", "receive": "send"}
    by_time = sorted((e for e in inst if e["name"] in ("block", "wake")),
                     key=lambda e: e["ts"])
    blocked = {}
    per_channel = {"a": 0, "b": 0}
    wakes = {}
    for e in by_time:
        a = e["args"]
        if e["name"] == "block":
            check(a.get("wait") == "channel" and a.get("ch") in chans,
                  "a block not on a or b: %r" % e)
            blocked[a["id"]] = (a.get("op"), a.get("ch"))
            continue
        if not check(a.get("by") in other and a.get("ch") in chans,
                     "a wake not by a channel: %r" % e):
            continue
        per_channel[chans[a["ch"]]] += 1
        check(blocked.pop(a["id"], None) == (other[a["by"]], a["ch"]),
              "woken without having blocked on the other side: %r" % e)
    check(per_channel == {"a": rounds, "b": rounds},
          "hand-overs per channel %r, want %d each" % (per_channel, rounds))
    check(not blocked, "blocked and never woken: %r" % blocked)

    # Flows pair up: the start at a wake, the end in the woken's slice.
    starts, ends = {}, {}
    for e in events:
        if e["ph"] == "s":
            check(e["id"] not in starts, "flow %r starts twice" % e["id"])
            starts[e["id"]] = e
        elif e["ph"] == "f":
            check(e["id"] not in ends, "flow %r ends twice" % e["id"])
            ends[e["id"]] = e
    check(set(starts) == set(ends),
          "flows unpaired: %r" % (set(starts) ^ set(ends)))
    check(len(starts) == 2 * rounds, "flows: %d" % len(starts))
    wake_at = {(e["tid"], e["ts"]): e for e in inst if e["name"] == "wake"}
    for fid, s in starts.items():
        f = ends.get(fid)
        if f is None:
            continue
        check(f["ts"] >= s["ts"] - EPS, "flow %r ends before it starts" % fid)
        w = wake_at.get((s["tid"], s["ts"]))
        if not check(w is not None, "flow %r starts at no wake" % fid):
            continue
        into = slice_at(f["tid"], f["ts"])
        check(into is not None and tasklet_of(into) == w["args"]["id"],
              "flow %r ends in %r, not in #%d" %
              (fid, into and into["name"], w["args"]["id"]))
    return report(fails, len(events))


def report(fails, n=0):
    for f in fails[:20]:
        print("trace_check: FAIL:", f)
    if fails:
        print("trace_check: %d failure(s)" % len(fails))
        return 1
    print("trace_check: %d events, every check holds" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
