#!/usr/bin/env python3
"""trace_svg.py - draws a stackless trace (the JSON sl_trace_stop writes,
docs/trace.md) as an SVG timeline, as the viewers show it: a track per
worker, a box per tasklet run labelled with its name, a tick per instant
(block, wake...) and an arrow per flow, from the run that woke a tasklet
to the run it woke it into. For pictures in the docs; to explore a trace,
open it in ui.perfetto.dev or chrome://tracing.

usage: trace_svg.py TRACE.json OUT.svg [--from US] [--to US] [--width PX]
(US: microseconds from the start of the trace; by default the whole)"""
import argparse
import colorsys
import json
import zlib

TRACK_H, GAP, LEFT, TOP, AXIS = 46, 18, 90, 30, 34


def colour(name):
    """A fixed colour per tasklet name (hue from its hash)."""
    base = name.split(" #")[0]
    h = (zlib.crc32(base.encode()) % 360) / 360.0
    r, g, b = colorsys.hls_to_rgb(h, 0.72, 0.55)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--from", dest="t0", type=float, default=None)
    ap.add_argument("--to", dest="t1", type=float, default=None)
    ap.add_argument("--width", type=int, default=1000)
    a = ap.parse_args()
    with open(a.trace) as f:
        events = json.load(f)

    tracks = sorted({e["tid"] for e in events if "tid" in e})
    tname = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    timed = [e for e in events if e["ph"] != "M"]
    t0 = a.t0 if a.t0 is not None else min(e["ts"] for e in timed)
    t1 = a.t1 if a.t1 is not None else max(e["ts"] + e.get("dur", 0)
                                           for e in timed)
    span = max(t1 - t0, 1e-3)
    plot_w = a.width - LEFT - 10
    x = lambda ts: LEFT + (ts - t0) / span * plot_w
    ty = {tid: TOP + i * (TRACK_H + GAP) for i, tid in enumerate(tracks)}
    height = TOP + len(tracks) * (TRACK_H + GAP) + AXIS
    inside = lambda ts: t0 <= ts <= t1

    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (a.width, height),
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
           'markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
           '<path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>']
    for tid in tracks:
        y = ty[tid]
        svg.append('<rect x="%d" y="%d" width="%d" height="%d" '
                   'fill="#f4f4f4"/>' % (LEFT, y, plot_w, TRACK_H))
        svg.append('<text x="6" y="%d">%s</text>' %
                   (y + TRACK_H / 2 + 4, esc(tname.get(tid, "tid %d" % tid))))
    # Runs: boxes with their tasklet's name where it fits.
    for e in events:
        if e["ph"] != "X" or e["ts"] > t1 or e["ts"] + e["dur"] < t0:
            continue
        xa, xb = x(max(e["ts"], t0)), x(min(e["ts"] + e["dur"], t1))
        y = ty[e["tid"]]
        svg.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" '
                   'stroke="#666" stroke-width="0.5"><title>%s</title>'
                   '</rect>' % (xa, y + 4, max(xb - xa, 0.8),
                                TRACK_H - 22, colour(e["name"]),
                                esc(e["name"])))
        if xb - xa > 7 * len(e["name"]):
            svg.append('<text x="%.1f" y="%d">%s</text>' %
                       (xa + 3, y + 17, esc(e["name"])))
    # Instants: a tick under the runs, marked by kind.
    marks = {"block": "#c0392b", "wake": "#27ae60", "spawn": "#2c3e50",
             "end": "#7f8c8d", "timer": "#8e44ad", "io": "#d35400",
             "kill": "#000000", "deadlock": "#000000"}
    for e in events:
        if e["ph"] == "i" and inside(e["ts"]):
            xx, y = x(e["ts"]), ty[e["tid"]] + TRACK_H - 16
            svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" '
                       'stroke-width="1.5"><title>%s %s</title></line>' %
                       (xx, y, xx, y + 10, marks.get(e["name"], "#333"),
                        e["name"], esc(json.dumps(e.get("args", {})))))
    # Flows: from the wake to the start of the woken one's run.
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    for e in events:
        if e["ph"] != "f" or e["id"] not in starts:
            continue
        s = starts[e["id"]]
        if not (inside(s["ts"]) and inside(e["ts"])):
            continue
        x1, x2 = x(s["ts"]), x(e["ts"])
        y1, y2 = ty[s["tid"]] + TRACK_H - 18, ty[e["tid"]] + 4
        if s["tid"] == e["tid"]:
            y2 = y1
            svg.append('<path d="M %.1f %d C %.1f %d %.1f %d %.1f %d" '
                       'fill="none" stroke="#333" stroke-width="0.8" '
                       'marker-end="url(#arrow)"/>' %
                       (x1, y1, x1, y1 + 12, x2, y2 + 12, x2, y2))
        else:
            svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" '
                       'stroke-width="0.8" marker-end="url(#arrow)"/>' %
                       (x1, y1, x2, y2))
    # The time axis.
    ya = TOP + len(tracks) * (TRACK_H + GAP) + 4
    svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>' %
               (LEFT, ya, LEFT + plot_w, ya))
    step = 10 ** len(str(int(span / 5))) / 10 or 1
    while span / step > 8:
        step *= 2
    t = (int(t0 / step) + 1) * step if t0 % step else t0
    while t <= t1:
        svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>'
                   '<text x="%.1f" y="%d" text-anchor="middle">%g us</text>' %
                   (x(t), ya, x(t), ya + 4, x(t), ya + 16, round(t, 3)))
        t += step
    lx = LEFT
    for n in ("block", "wake", "spawn", "end"):
        svg.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                   'stroke-width="2"/><text x="%d" y="%d">%s</text>' %
                   (lx, TOP - 20, lx, TOP - 10, marks[n], lx + 4, TOP - 11, n))
        lx += 12 + 7 * len(n)
    svg.append('<text x="%d" y="%d">arrows: from the wake to the run it '
               'starts</text>' % (lx + 6, TOP - 11))
    svg.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
