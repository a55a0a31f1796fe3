#!/usr/bin/env python3
"""summarize.py FILE.json... — one table row per variant: median, p90, floor
fraction (bytes_per_iter / COPY_TBPS), SM clock, wait share, energy per forward
(mJ) and mean power (W) of the energy window. COPY_TBPS env (default 3.02, the
D2D copy bandwidth of shared/GPU.md)."""
import json, os, sys, statistics
bw = float(os.environ.get("COPY_TBPS", "3.02")) * 1e12
print("| model | dtype | T | variant | median us | p90 us | floor us | floor/median | SM MHz | wait share | mJ/forward | W | check rel err |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for f in [a for a in sys.argv[1:] if not a.endswith(".trace.json")]:
    try:
        d = json.load(open(f))
    except Exception as e:
        print(f"| {f}: unreadable ({e}) |"); continue
    c = d["config"]; floor = d["bytes_per_iter"] / bw * 1e6
    for r in d["results"]:
        st = r["stats"] or {}
        mhz = [x for x in (r["sm_clock_mhz"] or []) if x]
        w = r["waits"]
        med = st.get("median")
        en = r.get("energy") or {}
        mj = en.get("joules_per_forward")
        print("| %s | %s | %d | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %.1e%s |" % (
            c["model"], c["dtype"] + ("/" + c["fp8_scales"] if c.get("fp8_scales") not in (None, "channel") else ""), c["tokens"], r["variant"],
            "%.1f" % med if med else "-", "%.1f" % st["p90"] if st else "-", floor,
            "%.2f" % (floor / med) if med else "-", "%.0f" % statistics.median(mhz) if mhz else "-",
            "%.2f" % w["share"] if w else "-", "%.2f" % (mj * 1e3) if mj else "-",
            "%.0f" % en["mean_power_w"] if mj else "-", r["check"]["rel_err"] or float("nan"),
            "" if r["check"]["pass"] else " FAIL"))
