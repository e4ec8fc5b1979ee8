"""Run every benchmark workload, print a table per workload, and write the figures as JSON.

    pip install -e ".[bench]"          # scikit-learn, PyTorch 2.13.0, pyarrow, threadpoolctl
    python -m benchmarks.run            # everything (a few minutes); writes benchmarks/results.json
    python -m benchmarks.run --quick    # fewer rounds, smaller predict file; prints only
    python -m benchmarks.run --only training,startup --json out.json

Figures are medians of interleaved rounds (see timing.py): compare ratios, not seconds,
on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import bigdata, clustering, environment, parquet, plot, sweep, threads, workloads
from benchmarks.timing import ratios, stats

RECORD = "benchmarks/results.json"
WORKLOADS = ("training", "small_data", "inference", "csv_ingestion", "startup", "streaming_predict", "parquet_predict", "scaling", "end_to_end", "threads", "big_data", "sweep", "clustering", "plot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds and a 100 MB predict file")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 5; 3 with --quick)")
    parser.add_argument("--predict-mb", type=int, default=None, help="size of the streaming-predict CSV (default 1000)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    parser.add_argument("--json", default=None,
                        help=f"where to write the figures (default: {RECORD} for a full run, nowhere for a partial one)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    predict_mb = args.predict_mb or (100 if args.quick else 1000)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")

    if not environment.compile_bytecode():  # (timed commands start as a user's do: see its docstring)
        print("warning: some of nncli's modules did not compile to bytecode; commands will be timed with their compilation",
              file=sys.stderr)
    info = environment.describe()
    print(environment.summary_line(info), flush=True)
    results = {"environment": info, "rounds": rounds}
    for name in chosen:
        print(f"\n… {name}", file=sys.stderr, flush=True)
        if name == "streaming_predict":
            result = workloads.streaming_predict(predict_mb)
        elif name == "parquet_predict":  # (the same size as the streaming-predict file, as Parquet)
            result = parquet.parquet_predict(rounds, predict_mb)
        else:  # the thread policy's, big data's, the sweep's, k-means' and plot's workloads live in modules of their own
            modules = {"threads": threads, "big_data": bigdata, "sweep": sweep, "clustering": clustering, "plot": plot}
            result = getattr(modules.get(name, workloads), name)(rounds)
        results[name] = summarise(result)
        print(render(results[name]), flush=True)
    # Only a full run replaces the record that benchmarks/README.md quotes.
    full = set(chosen) == set(WORKLOADS) and not args.quick and args.rounds is None and args.predict_mb is None
    target = args.json or (RECORD if full else None)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nFigures written to {target}")
    return 0


def summarise(result: dict) -> dict:
    out = {k: v for k, v in result.items() if k not in ("times", "files", "files_e2e")}
    if "files_e2e" in result:
        out["files"] = {}
        for label, data in result["files_e2e"].items():
            variants = {name: stats(samples) for name, samples in data["times"].items()}
            out["files"][label] = {**{k: v for k, v in data.items() if k != "times"}, "variants": variants,
                                   "ratio_to_reference": ratios(data["times"], result["reference"])}
        return out
    if "times" in result:
        out["variants"] = {name: stats(samples) for name, samples in result["times"].items()}
        if "reference" in result:
            out["ratio_to_reference"] = ratios(result["times"], result["reference"])
        if "flops" in result:
            out["gflop_per_s"] = {n: result["flops"] / 1e9 / s["median"] for n, s in out["variants"].items()}
        if "rows" in result:
            out["rows_per_s"] = {n: result["rows"] / s["median"] for n, s in out["variants"].items()}
    if "files" in result:
        out["files"] = {}
        for label, data in result["files"].items():
            variants = {name: stats(samples) for name, samples in data["times"].items()}
            out["files"][label] = {
                "megabytes": data["megabytes"],
                "variants": variants,
                "mb_per_s": {n: data["megabytes"] / s["median"] for n, s in variants.items()},
                "ratio_to_reference": {n: 1 / r for n, r in ratios(data["times"], result["reference"]).items()},
            }
    return out


def render(result: dict) -> str:
    lines = [result["title"]]
    if "variants" in result:
        reference = result.get("reference")
        lines.append(f"  {'variant':24} {'median':>9} {'min–max':>17}" + (f" {'× ' + reference:>16}" if reference else "")
                     + ("  GFLOP/s" if "gflop_per_s" in result else "") + ("     rows/s" if "rows_per_s" in result else ""))
        for name, s in result["variants"].items():
            line = f"  {name:24} {s['median']:8.3f}s {s['min']:7.3f}–{s['max']:7.3f}s"
            if reference:
                line += f" {result['ratio_to_reference'][name]:16.2f}"
            if "gflop_per_s" in result:
                line += f"  {result['gflop_per_s'][name]:7.1f}"
            if "rows_per_s" in result:
                line += f"  {result['rows_per_s'][name]:9,.0f}"
            lines.append(line)
    if "files" in result and "startup_rss_mb" in result:
        lines.append(f"  start-up RSS (nncli --version): {result['startup_rss_mb']:.0f} MB; "
                     f"with the libraries a run imports: {result.get('libraries_rss_mb', 0):.0f} MB")
        for label, data in result["files"].items():
            lines.append(f"  {label} (float32 training features {data['training_array_mb']:.0f} MB):")
            for name, s in data["variants"].items():
                read = f"  = {data['ratio_to_read'][name]:.2f}× the read alone" if name in data.get("ratio_to_read", {}) else ""
                lines.append(f"    {name:28} {s['median']:7.2f}s  ({s['min']:.2f}–{s['max']:.2f}s)  "
                             f"{data['ratio_to_reference'][name]:5.2f}× read+epoch  peak {data['peak_rss_mb'].get(name, 0):6.0f} MB{read}")
            for name, ratio in data["rss_over_startup_per_array"].items():
                libraries = data.get("rss_over_libraries_per_array", {}).get(name)
                lines.append(f"    {name}: peak RSS over start-up = {ratio:.1f}× the training features"
                             + ("" if libraries is None else f" ({libraries:.1f}× over the libraries' RSS)"))
            if "cache_read_over_parse" in data:
                lines.append(f"    parse cache load / CSV parse (in-process) = {data['cache_read_over_parse']:.3f}")
    elif "files" in result:
        for label, data in result["files"].items():
            lines.append(f"  {label}, {data['megabytes']:.0f} MB:")
            for name, s in data["variants"].items():
                lines.append(f"    {name:20} {data['mb_per_s'][name]:7.0f} MB/s  ({s['min']:.3f}–{s['max']:.3f}s)"
                             f"  {data['ratio_to_reference'][name]:5.2f}× numpy.loadtxt")
    if "peaks_mb" in result:
        lines.append(f"  peak RSS (start-up {result['startup_rss_mb']:.0f} MB): "
                     + ", ".join(f"{name} {peak:.0f} MB" for name, peak in result["peaks_mb"].items())
                     + ("" if result.get("same_predictions", True) else "  (predictions DIFFER)"))
    if "big_runs" in result:
        for name, run in result["big_runs"].items():
            lines.append(f"  {name:78} {run['seconds']:7.1f}s (epoch {run['epoch_seconds']:6.1f}s)  peak {run['peak_rss_mb']:7,.0f} MB")
    if "table" in result:
        lines.append(f"  {'rows':>7} {'layers':>18} {'GFLOP':>7} {'s/epoch':>8} {'GFLOP/s':>8}")
        for row in result["table"]:
            lines.append(f"  {row['rows']:7,} {'-'.join(map(str, row['sizes'])):>18} {row['gflop']:7.1f} {row['seconds']:8.3f} {row['gflop'] / row['seconds']:8.1f}")
    if "peak_rss_mb" in result:
        lines.append(f"  {result['seconds']:.1f} s, {result['rows'] / result['seconds']:,.0f} rows/s, "
                     f"{result['megabytes'] / result['seconds']:.0f} MB/s; first row after {result['first_row_seconds']:.2f} s; "
                     f"peak RSS {result['peak_rss_mb']:.0f} MB")
    lines.extend(f"  {note}" for note in result.get("notes", ()))  # figures a workload derives (sweep)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
