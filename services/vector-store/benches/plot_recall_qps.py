#!/usr/bin/env python3
"""Plots the recall-QPS curves the ANN benchmark (benches/ann.rs) wrote: one line per library,
recall@10 on x, queries per CPU second (one thread, log scale) on y, each point labelled with its ef.

Usage: plot_recall_qps.py RESULTS.json OUT.png, where RESULTS.json holds
{"title": str, "points": [{"library", "ef", "cpu_qps", "recall"}, ...]} (queries per CPU
second: the machine's other load does not distort it).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    libraries = {}
    for point in results["points"]:
        libraries.setdefault(point["library"], []).append(point)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for library, points in libraries.items():
        points.sort(key=lambda p: p["ef"])
        ax.plot([p["recall"] for p in points], [p["cpu_qps"] for p in points], marker="o", label=library)
        for p in points:
            ax.annotate(str(p["ef"]), (p["recall"], p["cpu_qps"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per CPU second (one thread)")
    ax.set_title(results.get("title", "recall vs QPS"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
