#!/usr/bin/env python3
"""trace_summary.py TRACE.json — per variant: each event kind's count, start/end
spread and durations (us), from a moe-bench --trace file."""
import json, sys, collections
t = json.load(open(sys.argv[1]))["traceEvents"]
procs = {e["pid"]: e["args"]["name"] for e in t if e["ph"] == "M"}
for pid, name in procs.items():
    ev = [e for e in t if e["pid"] == pid and e["ph"] == "X"]
    by = collections.defaultdict(list)
    for e in ev:
        by[e["name"]].append(e)
    print("%s: span %.1f us, %d blocks" % (name, max(e["ts"] + e["dur"] for e in ev), len({e["tid"] for e in ev})))
    for k, v in by.items():
        ts = [e["ts"] for e in v]; ends = [e["ts"] + e["dur"] for e in v]; d = sorted(e["dur"] for e in v)
        print("  %-24s n=%5d start %6.1f..%6.1f  end max %6.1f  dur min %6.2f med %6.2f max %6.2f  sum %8.0f" % (
            k, len(v), min(ts), max(ts), max(ends), d[0], d[len(d) // 2], d[-1], sum(d)))
