#!/usr/bin/env python3
"""Draws the scaling-study charts from the sweep CSVs in results/ (nothing else is read).

    python3 plots/make_charts.py [--results results] [--out plots] [--quick]

--quick reads the results/<sweep>-quick/ folders that `quorumsim sweep --quick` writes.
Each chart is written as PNG and SVG. Install: python3 -m pip install -r plots/requirements.txt
"""
import argparse
import csv
import math
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "svg.hashsalt": "quorumcoin",  # stable element ids: the SVGs diff cleanly
    "figure.dpi": 110,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
})
COLORS = {"quorumcoin": "#1f77b4", "batched": "#17becf", "smr": "#d62728", "bitcoin": "#ff7f0e"}


def read_points(results, sweep):
    path = os.path.join(results, sweep, "points.csv")
    if not os.path.exists(path):
        sys.exit(f"missing {path}: run `quorumsim sweep scenarios/sweeps/{sweep.replace('-quick', '')}.yaml"
                 f"{' --quick' if sweep.endswith('-quick') else ''}` first")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_csv(results, sweep, row, name):
    path = os.path.join(results, sweep, row["dir"], name)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(text):
    return float(text) if text not in ("", None) else math.nan


def by(rows, *keys):
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    return groups


def mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def seeds(rows):
    return len({r["seed"] for r in rows})


def save(fig, out, name):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, f"{name}.{ext}"), bbox_inches="tight",
                    metadata={"Date": None} if ext == "svg" else {"Software": None})
    plt.close(fig)
    print(f"wrote {out}/{name}.png and .svg")


def series(rows, x_key, y_key):
    """(x, mean y, min y, max y) over seeds, sorted by x."""
    pts = []
    for (x,), group in sorted(by(rows, x_key).items(), key=lambda kv: float(kv[0][0])):
        ys = [num(r[y_key]) for r in group]
        ys = [y for y in ys if not math.isnan(y)]
        if ys:
            pts.append((float(x), mean(ys), min(ys), max(ys)))
    return pts


def errplot(ax, pts, **kw):
    if not pts:
        return
    xs, ys, lo, hi = zip(*pts)
    ax.errorbar(xs, ys, yerr=[[y - l for y, l in zip(ys, lo)], [h - y for y, h in zip(ys, hi)]],
                capsize=3, marker="o", ms=4, **kw)


def chart_scaling(results, out, q):
    rows = read_points(results, "groups" + q)
    btc = read_points(results, "bitcoin-groups" + q)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    qc = [r for r in rows if r["system"] == "quorumcoin"]
    smr = [r for r in rows if r["system"] == "smr"]
    offered = sorted({(int(r["groups"]), num(r["offered_per_s"])) for r in qc})
    ax.plot([g for g, _ in offered], [o for _, o in offered], ls=":", color="grey", label="offered load")
    errplot(ax, series(qc, "groups", "throughput_per_s"), color=COLORS["quorumcoin"], label="QuorumCoin (n=4 per group)")
    errplot(ax, series(smr, "groups", "throughput_per_s"), color=COLORS["smr"], label="PBFT-style SMR (one committee of 4)")
    errplot(ax, series(btc, "groups", "throughput_per_s"), color=COLORS["bitcoin"], label="Bitcoin (4 miners per group)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("replica groups (shards); replicas = 4 × groups")
    ax.set_ylabel("confirmed payments per second (steady window)")
    ax.set_title(f"Throughput vs groups at 1,000 payments/s offered per group\n"
                 f"(modelled Ed25519 CPU costs, 5–15 ms network; {seeds(rows)} seeds, Bitcoin {seeds(btc)})")
    ax.legend(loc="upper left", fontsize=9)
    save(fig, out, "throughput_vs_groups")


def cdf_points(results, sweep, rows):
    """Mean over seeds of each quantile: (ms, fraction)."""
    acc = defaultdict(list)
    for r in rows:
        for c in read_csv(results, sweep, r, "latency_cdf.csv"):
            acc[int(c["permille"])].append(float(c["confirm_ms"]))
    return [(mean(v), p / 1000) for p, v in sorted(acc.items())]


def chart_cdf(results, out, q):
    rows = read_points(results, "cdf" + q)
    btc = read_points(results, "bitcoin-latency" + q)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, label in (("quorumcoin", "QuorumCoin, 16 groups, 8,000/s"), ("smr", "PBFT-style SMR, 8,000/s")):
        sel = [r for r in rows if r["system"] == system]
        pts = cdf_points(results, "cdf" + q, sel)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=COLORS[system], label=f"{label} ({seeds(sel)} seeds)")
    pts = cdf_points(results, "bitcoin-latency" + q, btc)
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=COLORS["bitcoin"],
                label=f"Bitcoin, 3/s, 6 confirmations ({seeds(btc)} seeds)")
    ax.set_xscale("log")
    ax.set_xlabel("confirmation latency (ms, log scale)")
    ax.set_ylabel("fraction of payments confirmed")
    ax.set_ylim(0, 1.01)
    ax.set_title("Confirmation latency CDF, payments issued in the steady window\n(each system below its capacity)")
    ax.legend(loc="lower right", fontsize=9)
    save(fig, out, "latency_cdf")


def chart_load(results, out, q):
    rows = read_points(results, "load" + q)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.3))
    for key, label, color in ((("quorumcoin", "per-record"), "QuorumCoin per-record", COLORS["quorumcoin"]),
                              (("quorumcoin", "batched"), "QuorumCoin batched", COLORS["batched"]),
                              (("smr", "per-record"), "PBFT-style SMR", COLORS["smr"])):
        sel = [r for r in rows if (r["system"], r["variant"]) == key]
        errplot(a1, series(sel, "offered_per_s", "throughput_per_s"), color=color, label=label)
        p99 = series(sel, "offered_per_s", "p99_ms")
        p50 = series(sel, "offered_per_s", "p50_ms")
        errplot(a2, p99, color=color, label=f"{label} p99")
        if p50:
            a2.plot([p[0] for p in p50], [p[1] for p in p50], color=color, ls="--", lw=1, label=f"{label} p50")
    offered = sorted({num(r["offered_per_s"]) for r in rows})
    a1.plot(offered, offered, ls=":", color="grey", label="offered")
    a1.set_xlabel("offered load (payments/s)")
    a1.set_ylabel("confirmed payments/s (steady window)")
    a1.legend(fontsize=8)
    a2.set_yscale("log")
    a2.set_xlabel("offered load (payments/s)")
    a2.set_ylabel("confirmation latency (ms, log scale)")
    a2.legend(fontsize=7, ncol=2)
    fig.suptitle(f"Throughput and latency vs offered load: QuorumCoin 16 groups × 4 vs SMR committee of 4 ({seeds(rows)} seeds)")
    save(fig, out, "latency_vs_load")


FAULT = re.compile(r"behaviour: ([a-z-]+), per_group: (\d+)")


def chart_faults(results, out, q):
    rows = read_points(results, "faults" + q)
    for r in rows:
        m = FAULT.search(r.get("faults.replicas", ""))
        r["behaviour"], r["faulty"] = (m.group(1), m.group(2)) if m else ("none", "0")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.3))
    for behaviour, color in (("silent", "#9467bd"), ("equivocate", "#8c564b")):
        sel = [r for r in rows if r["behaviour"] in (behaviour, "none")]
        errplot(a1, series(sel, "faulty", "throughput_per_s"), color=color, label=behaviour)
        errplot(a2, series(sel, "faulty", "p99_ms"), color=color, label=f"{behaviour} p99")
    for a in (a1, a2):
        a.axvline(2.5, color="grey", ls=":")
        a.text(2.55, 0.05, "beyond f = 2", transform=a.get_xaxis_transform(), fontsize=8, color="grey")
        a.set_xlabel("faulty replicas in every group (n = 7, f = 2)")
        a.set_xticks([0, 1, 2, 3])
        a.legend(fontsize=8)
    a1.set_ylabel("confirmed payments/s (steady window)")
    a2.set_ylabel("p99 confirmation latency (ms)")
    offered = num(rows[0]["offered_per_s"]) if rows else 0
    fig.suptitle(f"Faulty replicas per group: 16 groups, {offered:,.0f} payments/s offered ({seeds(rows)} seeds; "
                 f"a missing point = no payment issued in the window confirmed)")
    save(fig, out, "faults")


def chart_validation(results, out, q):
    rows = read_points(results, "validation" + q)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, color in (("certificate", COLORS["quorumcoin"]), ("closure", COLORS["smr"])):
        sel = [r for r in rows if r["validation"] == mode]
        total = defaultdict(float)
        count = defaultdict(int)
        for r in sel:
            for v in read_csv(results, "validation" + q, r, "validation.csv"):
                n = int(v["validations"])
                total[int(v["depth"])] += float(v["mean_ms"]) * n
                count[int(v["depth"])] += n
        depths = sorted(d for d in count if count[d] >= 5)
        ax.plot(depths, [total[d] / count[d] for d in depths], marker="o", ms=3, color=color,
                label=f"{mode} ({seeds(sel)} seeds)")
    ax.set_xlabel("payment depth (longest chain of payments back to genesis)")
    ax.set_yscale("log")
    ax.set_ylabel("payee validation time (ms, simulated, log scale)")
    ax.set_title("Reader validation cost vs history depth\n(4 groups, 40 principals, closed loop; depths with ≥ 5 validations)")
    ax.legend()
    save(fig, out, "validation_vs_depth")


def chart_variants(results, out, q):
    rows = read_points(results, "variants" + q)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.3))
    for variant, color in (("per-record", COLORS["quorumcoin"]), ("batched", COLORS["batched"])):
        sel = [r for r in rows if r["variant"] == variant]
        for r in sel:
            r["msgs_per_payment"] = str(num(r["messages_total"]) / max(1, num(r["confirmed"])))
        errplot(a1, series(sel, "workload.inputs", "p50_ms"), color=color, label=f"{variant} p50")
        p99 = series(sel, "workload.inputs", "p99_ms")
        a1.plot([p[0] for p in p99], [p[1] for p in p99], color=color, ls="--", label=f"{variant} p99")
        errplot(a2, series(sel, "workload.inputs", "msgs_per_payment"), color=color, label=variant)
    a1.set_xlabel("inputs per payment")
    a1.set_ylabel("confirmation latency (ms)")
    a1.legend(fontsize=8)
    a2.set_xlabel("inputs per payment")
    a2.set_ylabel("messages per confirmed payment")
    a2.legend(fontsize=8)
    offered = num(rows[0]["offered_per_s"]) if rows else 0
    fig.suptitle(f"Per-record vs batched writes: 16 groups, {offered:,.0f} payments/s offered ({seeds(rows)} seeds)")
    save(fig, out, "writes_per_record_vs_batched")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--out", default="plots")
    ap.add_argument("--quick", action="store_true", help="read the -quick sweeps")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    q = "-quick" if args.quick else ""
    for chart in (chart_scaling, chart_cdf, chart_load, chart_faults, chart_validation, chart_variants):
        chart(args.results, args.out, q)


if __name__ == "__main__":
    main()
