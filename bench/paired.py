#!/usr/bin/env python3
"""Times two commands in interleaved pairs, for ratios that load drift cannot bias.

hyperfine runs every sample of one command before the first of the next: a change in the
machine's load half way (another job starting, the page cache filling) lands on one command
only and moves their ratio. Here run i times A then B when i is even and B then A when it is
odd, each after its own --prepare, so both see the same conditions; the ratio reported is the
median of the per-pair ratios as well as the ratio of the medians.

usage: paired.py --runs N [--warmup W] --export-json FILE
                 NAME_A PREPARE_A COMMAND_A NAME_B PREPARE_B COMMAND_B

PREPARE runs under bash; COMMAND is split like a shell word list (shlex) and run directly (no
shell in the timing, like hyperfine -N). The JSON has hyperfine's shape ("results": command,
times, mean, median, min, max, user, system) plus "paired": per-pair ratios B/A and their median.
"""

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time


def run_prepare(cmd: str) -> None:
    subprocess.run(["bash", "-c", cmd], check=True, stdout=subprocess.DEVNULL)


def timed(argv: list[str]) -> tuple[float, float, float]:
    """Wall, user and system seconds of one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        sys.exit(f"paired.py: {shlex.join(argv)} exited with {r.returncode}")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def summary(name: str, samples: list[tuple[float, float, float]]) -> dict:
    times = [s[0] for s in samples]
    return {
        "command": name,
        "times": times,
        "mean": statistics.fmean(times),
        "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "user": statistics.fmean(s[1] for s in samples),
        "system": statistics.fmean(s[2] for s in samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--export-json", required=True)
    ap.add_argument("spec", nargs=6, metavar="NAME PREPARE COMMAND")
    args = ap.parse_args()
    cmds = [
        (args.spec[0], args.spec[1], shlex.split(args.spec[2])),
        (args.spec[3], args.spec[4], shlex.split(args.spec[5])),
    ]
    samples: list[list[tuple[float, float, float]]] = [[], []]
    for i in range(args.warmup + args.runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        pair = [None, None]
        for k in order:
            _, prepare, argv = cmds[k]
            run_prepare(prepare)
            pair[k] = timed(argv)
        if i >= args.warmup:
            for k in (0, 1):
                samples[k].append(pair[k])
    ratios = [b[0] / a[0] for a, b in zip(samples[0], samples[1])]
    results = [summary(cmds[k][0], samples[k]) for k in (0, 1)]
    doc = {
        "results": results,
        "paired": {
            "ratios": ratios,
            "median_ratio": statistics.median(ratios),
            "ratio_of_medians": results[1]["median"] / results[0]["median"],
        },
    }
    with open(args.export_json, "w") as f:
        json.dump(doc, f, indent=1)
    for r in results:
        print(
            f"{r['command']}: median {r['median'] * 1000:.1f} ms "
            f"({r['min'] * 1000:.1f}–{r['max'] * 1000:.1f}), "
            f"user {r['user'] * 1000:.1f} ms, system {r['system'] * 1000:.1f} ms",
            file=sys.stderr,
        )
    p = doc["paired"]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(
        f"{cmds[1][0]} / {cmds[0][0]}: median of {len(ratios)} paired ratios "
        f"{p['median_ratio']:.2f} (quartiles {q[0]:.2f}–{q[2]:.2f}), "
        f"ratio of medians {p['ratio_of_medians']:.2f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
