#!/usr/bin/env python3
"""Turns the results bench/run.sh collected into Markdown tables (stdout).

Usage: table.py RESULTS_DIR   (machine and versions come from $BENCH_META, a JSON object)

Reads, per scenario: SCENARIO.json (hyperfine --export-json), SCENARIO.uploads ("rbuild_uploads
peer_uploads runs"), and for deps-only/heavy the deps_layer example's report (SCENARIO.layer.json)
and peak RSS in kB (heavy.rss-layer, heavy.rss-build).
"""

import json
import statistics
import os
import sys
from pathlib import Path

RESULTS = Path(sys.argv[1])
META = json.loads(os.environ.get("BENCH_META", "{}"))

# scenario: (peer name in the hyperfine run, what the peer is, target text)
SCENARIOS = {
    "cold": ("buildah", "buildah build + push", "≥ 4× faster"),
    "warm-app": ("buildah", "buildah build --layers + push", "≤ 0.2 s and ≥ 4× faster"),
    "deps-change": ("buildah", "buildah build --layers + push", "≥ 5× faster"),
    "no-change": ("buildah", "buildah build --layers + push", "0 uploads and ≤ 0.15 s"),
    "empty-runner": ("buildah", "buildah build --layers (empty storage) + push", "≤ 0.2 s and ≥ 4× faster"),
    "deps-only": ("uv", "uv pip install --target + tar \\| gzip", "faster than the peer"),
}


def load(name):
    p = RESULTS / name
    return p.read_text().strip() if p.exists() else None


def runs(scenario):
    text = load(f"{scenario}.json")
    if text is None:
        return None
    return {r["command"]: r for r in json.loads(text)["results"]}


def fmt(r):
    if r is None:
        return "–"
    if r["median"] < 1:
        return f"{r['median'] * 1000:.0f} ms ({r['min'] * 1000:.0f}–{r['max'] * 1000:.0f})"
    return f"{r['median']:.2f} s ({r['min']:.2f}–{r['max']:.2f})"


def uploads(scenario):
    text = load(f"{scenario}.uploads")
    if text is None:
        return None, None
    a, b, n = (int(x) for x in text.split())
    return a / n, b / n


def met(ok):
    return "yes" if ok else "**no**"


out = []
meta = META
out.append(
    f"Run {meta.get('date', '?')} on {meta.get('cpu', '?')}, {meta.get('ram', '?')} RAM, "
    f"Linux {meta.get('kernel', '?')}; rbuild {meta.get('rbuild', '?')} (release build), "
    f"buildah {meta.get('buildah', '?')} ({meta.get('driver', '?')} storage, chroot isolation), "
    f"uv {meta.get('uv', '?')}, hyperfine {meta.get('hyperfine', '?')}. "
    f"Load average (1, 5, 15 min): {meta.get('load', '?')}."
    + (" **Quick run (--quick): few samples.**" if meta.get("quick") == "1" else "")
)
out.append("")
out.append("Times are medians (min–max) of independent runs, each from a restored state.")
out.append("")
if any(runs(s) is not None for s in SCENARIOS):
    out.append("| scenario | rbuild | peer | peer time | rbuild/peer | speed-up | blob uploads per run (rbuild / peer) | target | met |")
    out.append("|---|---|---|---|---|---|---|---|---|")
for scenario, (peer_name, peer_what, target) in SCENARIOS.items():
    rs = runs(scenario)
    if rs is None:
        continue
    r, p = rs.get("rbuild"), rs.get(peer_name)
    ratio = r["median"] / p["median"]
    speedup = p["median"] / r["median"]
    ur, up = uploads(scenario)
    up_text = "–" if scenario == "deps-only" or ur is None else f"{ur:g} / {up:g}"
    if scenario == "cold":
        ok = speedup >= 4
    elif scenario in ("warm-app", "empty-runner"):
        ok = r["median"] <= 0.2 and speedup >= 4
    elif scenario == "deps-change":
        ok = speedup >= 5
    elif scenario == "no-change":
        ok = ur == 0 and r["median"] <= 0.15
    else:
        ok = r["median"] < p["median"]
    shortfall = ""
    if not ok:
        if scenario in ("cold", "deps-change", "warm-app", "empty-runner") and speedup < (4 if scenario != "deps-change" else 5):
            need = 4 if scenario != "deps-change" else 5
            shortfall = f" ({speedup:.1f}× of {need}×)"
        if scenario in ("warm-app", "no-change", "empty-runner"):
            limit = 0.15 if scenario == "no-change" else 0.2
            if r["median"] > limit:
                shortfall += f" ({r['median'] / limit:.1f}× over {limit} s)"
        if scenario == "no-change" and ur:
            shortfall += f" ({ur:g} uploads)"
    out.append(
        f"| {scenario} | {fmt(r)} | {peer_what} | {fmt(p)} | {ratio:.3f} | {speedup:.1f}× | {up_text} | {target} | {met(ok)}{shortfall} |"
    )

heavy = runs("heavy")
if heavy is not None:
    layer = json.loads(load("heavy.layer.json") or "{}")
    mb = layer.get("uncompressed_bytes", 0) / 1e6
    rss_layer = int(load("heavy.rss-layer") or 0) * 1024 / 1e6
    rss_build = int(load("heavy.rss-build") or 0) * 1024 / 1e6
    out.append("")
    out.append(
        f"Heavy (numpy + pandas + scipy; {layer.get('distributions', '?')} distributions, "
        f"{layer.get('files', '?')} files, {mb:.0f} MB uncompressed layer, "
        f"{layer.get('compressed_bytes', 0) / 1e6:.0f} MB gzip), wheels already in the store / uv cache:"
    )
    out.append("")
    out.append("| what | time | MB/s of uncompressed layer | peak RSS | target | met |")
    out.append("|---|---|---|---|---|---|")
    rows = [
        ("rbuild-layer", "rbuild deps layer (install + tar + gzip + sha256 into the store)", rss_layer),
        ("rbuild-build", "rbuild build --output oci: (whole build, deps layer rebuilt)", rss_build),
        ("uv", "uv pip install --target + tar \\| gzip", None),
    ]
    for key, what, rss in rows:
        r = heavy.get(key)
        if r is None:
            continue
        rss_text = "–" if rss is None else f"{rss:.0f} MB"
        target = "peak RSS ≤ 150 MB" if key == "rbuild-build" else ""
        ok = "" if key != "rbuild-build" else met(rss is not None and rss <= 150)
        out.append(f"| {what} | {fmt(r)} | {mb / r['median']:.0f} | {rss_text} | {target} | {ok} |")

# Issue #9: two platforms against one, same app and base (the two-platform fixture).
multi_rows = []
for scenario, what in (
    ("multi-cold", "cold: empty store, build + push"),
    ("multi-warm", "warm: one app file changed, build + push"),
):
    rs = runs(scenario)
    if rs is None:
        continue
    one, two = rs.get("one-platform"), rs.get("two-platforms")
    paired = json.loads(load(f"{scenario}.json")).get("paired")
    if paired:
        # Interleaved pairs (bench/paired.py): the median of the per-pair ratios, with quartiles.
        ratios = sorted(paired["ratios"])
        ratio = paired["median_ratio"]
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratio] * 3
        ratio_text = f"{ratio:.2f}× ({q[0]:.2f}–{q[2]:.2f})"
    else:
        ratio = two["median"] / one["median"]
        ratio_text = f"{ratio:.2f}×"
    u_one, u_two = uploads(scenario)
    up_text = "–" if u_one is None else f"{u_one:g} / {u_two:g}"
    multi_rows.append(
        f"| {what} | {fmt(one)} | {fmt(two)} | {ratio_text} | {up_text} | < 1.5× | {met(ratio < 1.5)} |"
    )
if multi_rows:
    out.append("")
    out.append(
        "Multi-platform (issue #9): the same app on the two-platform base fixture (an index over "
        "amd64 and arm64), `--platform linux/amd64` against `--platform linux/amd64,linux/arm64`, "
        "timed in interleaved pairs (bench/paired.py); two / one is the median of the per-pair "
        "ratios (quartiles):"
    )
    out.append("")
    out.append("| scenario | one platform | two platforms | two / one | blob uploads per run (one / two) | target | met |")
    out.append("|---|---|---|---|---|---|---|")
    out.extend(multi_rows)

deps = load("deps-only.layer.json")
if deps:
    d = json.loads(deps)
    out.append("")
    out.append(
        f"deps-only layer: {d.get('distributions')} distributions, {d.get('files')} files, "
        f"{d.get('uncompressed_bytes', 0) / 1e6:.1f} MB uncompressed, "
        f"{d.get('compressed_bytes', 0) / 1e6:.1f} MB gzip."
    )
print("\n".join(out))
