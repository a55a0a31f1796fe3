#!/usr/bin/env python3
"""One line per variant of each moe-bench JSON named on the command line: check, median, p90 and, for the
expert-parallel variants, how they ran (compute mode, shared experts). For the GPU-run scripts in this folder
(the dated ones keep their own copy of this, as they were run)."""
import json
import sys

for f in sys.argv[1:]:
    if f.endswith("trace.json"):
        continue
    try:
        d = json.load(open(f))
    except Exception as e:  # a run that died leaves no JSON: say so and go on
        print(f, "unreadable", e)
        continue
    for r in d["results"]:
        st = r.get("stats") or {}
        c = r["check"]
        ep = r.get("ep") or {}
        extra = " compute=%s shared=%s" % ((ep.get("compute") or "")[:7], (ep.get("shared_experts") or "")[:10]) if ep else ""
        print(f.split("/")[-1], r["variant"], "pass=%s rel_err=%.2e" % (c["pass"], c.get("rel_err") or -1),
              "median=%.2f p90=%.2f" % (st.get("median", -1), st.get("p90", -1)) + extra)
