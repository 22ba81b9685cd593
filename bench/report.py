"""Turn benchmark results into Markdown tables, PNG plots and ``docs/benchmarks.json``::

    python -m bench.report                       # reads /tmp/engram-bench/results/*.json

Writes ``docs/benchmarks.json`` (one object per engine, scale and operation, with the keys
``engine, scale, op, p50_ms, p99_ms, recall@10, date``), ``docs/img/bench-latency.png``,
``docs/img/bench-build.png``, and the tables between the ``<!-- tables:start -->`` and
``<!-- tables:end -->`` markers of ``docs/benchmarks.md`` (printed when the markers are
missing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
JSON_OPS = ("keyword", "vector", "hybrid", "hybrid_filtered")
ALL_OPS = (*JSON_OPS, "vector_filtered")
START, END = "<!-- tables:start -->", "<!-- tables:end -->"


def load_results(folder: Path) -> list[dict]:
    out = []
    for p in sorted(folder.glob("scale-*.json")):
        r = json.loads(p.read_text())
        if "query" in r:
            r["_file"] = p.name
            out.append(r)
    return sorted(out, key=lambda r: r["scale"])


def engine_results(r: dict) -> dict[str, dict]:
    """``{engine: {op: figures}}`` of one scale run."""
    return {k: v for k, v in r["query"].items() if isinstance(v, dict) and not k.startswith("_")}


def fmt(x, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}f}"
    return str(x)


def mib(b) -> str:
    return "–" if b is None else f"{b / 2**20:,.0f}"


def engines_of(results: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for e in engine_results(r):
            seen.setdefault(e)
    return list(seen)


def benchmarks_json(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        date = r["machine"]["date"]
        for eng, ops in engine_results(r).items():
            for op in JSON_OPS:
                if op not in ops:
                    continue
                o = ops[op]
                rows.append(
                    {
                        "engine": eng,
                        "scale": r["scale"],
                        "op": op,
                        "p50_ms": o["p50_ms"],
                        "p99_ms": o["p99_ms"],
                        "recall@10": o.get("recall@10") if op == "vector" else None,
                        "date": date,
                    }
                )
        rows += wall_rows(r, date)
    return rows


def wall_rows(r: dict, date: str) -> list[dict]:
    """Rows with op ``build`` (build with vectors given) and ``open`` (open the store and
    answer the first hybrid query in a fresh process), wall time in ``seconds``."""
    rows = []
    for eng, o in r.get("reopen", {}).items():
        b = r.get("build", {}).get(eng, {})
        for op, secs in (("build", b.get("build_s")), ("open", o.get("open_plus_first_s"))):
            if secs is not None:
                row = {"engine": eng, "scale": r["scale"], "op": op, "seconds": round(secs, 3)}
                if op == "build":
                    row["cpu_s"] = b.get("cpu_s")
                    if "ingest_s" in b and "index_cpu_s" in b:  # Engram: store + keyword alone
                        merge = b.get("keyword_merge_s", 0.0)
                        row["store_keyword_s"] = round(b["ingest_s"] + merge, 3)
                        row["vector_index_s"] = round(b["index_s"] - merge, 3)
                rows.append({**row, "date": date})
    return rows


def merged_json(path: Path, rows: list[dict]) -> list[dict]:
    """``rows``, plus the rows already in ``path`` for (engine, scale) pairs not measured now."""
    fresh = {(r["engine"], r["scale"]) for r in rows}
    old = json.loads(path.read_text()) if path.exists() else []
    return [r for r in old if (r["engine"], r["scale"]) not in fresh] + rows


def latency_table(r: dict) -> str:
    q = r["query"]
    engs = list(engine_results(r))
    lines = [
        f"**{r['scale']:,} chunks** ({q['_meta']['queries_measured']} queries per operation, "
        f'one at a time, interleaved, then back to back for "batch q/s"; load average at start '
        f"{', '.join(str(x) for x in r['machine']['loadavg'])})",
        "",
        "| engine | op | p50 ms | p95 ms | p99 ms | CPU ms/query | batch q/s | recall@10 | "
        "k results | vs LanceDB p50 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lance = q.get("lancedb", {})
    for op in ALL_OPS:
        for e in engs:
            o = q[e].get(op)
            if not o:
                continue
            ratio = ""
            if e != "lancedb" and op in lance and lance[op]["p50_ms"]:
                ratio = f"{o['p50_ms'] / lance[op]['p50_ms']:.2f}x"
            full = o.get("full_k_share")
            lines.append(
                f"| {e} | {op} | {fmt(o['p50_ms'], 2)} | {fmt(o['p95_ms'], 2)} | "
                f"{fmt(o['p99_ms'], 2)} | {fmt(o.get('cpu_ms_mean'), 2)} | "
                f"{fmt(o.get('batch_qps'))} | {fmt(o.get('recall@10'), 3)} | "
                f"{'–' if full is None else f'{full:.0%}'} | {ratio} |"
            )
    return "\n".join(lines)


def build_table(results: list[dict]) -> str:
    lines = [
        "| scale | engine | build s | rows/s | build CPU s | store + keyword s (rows/s) | "
        "vector index s | peak RSS build MiB | disk MiB | "
        "import s | open + first query s | first query ms | RSS serving MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        builds = r.get("build", {})
        for e in r.get("reopen", {}):
            opts = r.get("engines", {}).get(e, {}).get("options", {})
            label = e
            if e in builds:
                b = builds[e]
            elif opts.get("store"):
                b, label = {}, f"{e} (store `{opts['store']}`, see text)"
            else:
                b, label = builds.get(e.split("@")[0], {}), f"{e} (same store)"
            o = r["reopen"][e]
            bs = b.get("build_s")
            lines.append(
                f"| {r['scale']:,} | {label} | {fmt(bs)} | "
                f"{fmt(r['scale'] / bs if bs else None)} | {fmt(b.get('cpu_s'))} | "
                f"{split_cells(b, r['scale'])} | "
                f"{fmt(b.get('peak_rss_mib'))} | {mib(b.get('disk_bytes'))} | "
                f"{fmt(o.get('import_s'), 2)} | {fmt(o['open_plus_first_s'], 2)} | "
                f"{fmt(o['first_query_ms'])} | {fmt(o['peak_rss_mib'])} |"
            )
    return "\n".join(lines)


def split_cells(b: dict, scale: int) -> str:
    """Engram's build split: store + keyword index (rows/s), then the vector index."""
    if "index_cpu_s" not in b:
        return "– | –"
    merge = b.get("keyword_merge_s", 0.0)  # keyword segments merged at the start of optimize
    ingest, index = b["ingest_s"] + merge, b["index_s"] - merge
    return f"{fmt(ingest)} ({fmt(scale / ingest if ingest else None)}) | {fmt(index)}"


def quality_table(path: Path) -> str:
    if not path.exists():
        return ""
    q = json.loads(path.read_text())
    lines = [
        f"SciFact {q['split']} ({q['queries']} queries, {q['docs']:,} documents)",
        "",
        "| engine | mode | nDCG@10 | recall@100 | query p50 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for row in q["rows"]:
        mode = row["mode"] + (f" ({row['fusion']})" if row.get("fusion") else "")
        lines.append(
            f"| {row['engine']} | {mode} | {row['ndcg@10']:.4f} | {row['recall@100']:.4f} | "
            f"{fmt(row.get('p50_ms'), 2)} |"
        )
    return "\n".join(lines)


def ingest_table(path: Path) -> str:
    if not path.exists():
        return ""
    q = json.loads(path.read_text())
    lines = [
        f"SciFact sample, default embedder, {q['threads']} thread(s)",
        "",
        "| engine | docs | chunks | seconds | docs/s | chunks/s | of which embedding s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in q["rows"]:
        lines.append(
            f"| {r['engine']} | {r['docs']} | {r['chunks']} | {r['seconds']} | "
            f"{r['docs_per_s']} | {r['chunks_per_s']} | {fmt(r['embed_s'], 2)} |"
        )
    return "\n".join(lines)


def _scale_axis(ax, results: list[dict]) -> None:
    scales = sorted({r["scale"] for r in results})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(scales)
    ax.set_xticklabels([f"{s // 1000:,}k" if s < 10**6 else f"{s / 1e6:g}M" for s in scales])
    ax.minorticks_off()
    ax.xaxis.set_tick_params(which="minor", bottom=False)
    ax.grid(True, which="major", alpha=0.3)
    if len(scales) > 1:
        ax.set_xlim(scales[0] / 1.5, scales[-1] * 1.5)


def plots(results: list[dict], img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    engs = engines_of(results)
    colors = dict(zip(engs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3, strict=False))
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for ax, op in zip(axes.ravel(), JSON_OPS, strict=True):
        for e in engs:
            xs, p50, p99 = [], [], []
            for r in results:
                o = r["query"].get(e, {}).get(op)
                if o and o["p50_ms"] is not None:
                    xs.append(r["scale"])
                    p50.append(o["p50_ms"])
                    p99.append(o["p99_ms"])
            if not xs:
                continue
            ax.plot(xs, p50, "o-", color=colors[e], label=e, linewidth=2)
            ax.plot(xs, p99, "x--", color=colors[e], alpha=0.45, linewidth=1)
        _scale_axis(ax, results)
        ax.set_title(op.replace("_", " "))
        ax.set_ylabel("ms per query (log)")
    for ax in axes[1]:
        ax.set_xlabel("chunks")
    handles, labels = [], []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=10)
    fig.suptitle("Single-query latency against scale (solid: p50, dashed: p99)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    p1 = img / "bench-latency.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    metrics = (
        ("build_s", "build: ingest + indexes (s)", "build"),
        ("peak_rss_mib", "peak RSS while building (MiB)", "build"),
        ("disk_bytes", "disk (MiB)", "build"),
    )
    for ax, (key, title, section) in zip(axes, metrics, strict=True):
        for e in engs:
            xs, ys = [], []
            for r in results:
                v = r.get(section, {}).get(e, {}).get(key)
                if v is not None:
                    xs.append(r["scale"])
                    ys.append(v / 2**20 if key == "disk_bytes" else v)
            if xs:
                ax.plot(xs, ys, "o-", color=colors[e], label=e)
        _scale_axis(ax, results)
        ax.set_title(title)
        ax.set_xlabel("chunks")
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    p2 = img / "bench-build.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def data_line(results: list[dict]) -> str:
    if not results:
        return ""
    d = results[-1]["data"]
    return (
        f"Data (largest run): {d['rows']:,} rows, {d['dim']}-d clustered unit vectors "
        f"({d['clusters']} clusters); mean cosine random pair {d['cos_random_mean']}, same "
        f"subtopic {d['cos_same_subtopic_mean']}, query to its source {d['cos_query_source_mean']}"
        f"; {d['words_per_doc_mean']} words per document. Example query: "
        f"`{d['query_example']}`."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default="/tmp/engram-bench/results")
    p.add_argument("--json", default=str(ROOT / "docs" / "benchmarks.json"))
    p.add_argument("--img", default=str(ROOT / "docs" / "img"))
    p.add_argument("--md", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the JSON rows of engines and scales not in these results",
    )
    p.add_argument("--print", action="store_true", help="print the tables, leave the page")
    a = p.parse_args()
    folder = Path(a.results)
    results = load_results(folder)
    if not results:
        raise SystemExit(f"no scale-*.json with query results in {folder}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    rows = benchmarks_json(results)
    if a.merge:
        rows = merged_json(Path(a.json), rows)
    Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    pngs = plots(results, Path(a.img))
    parts = [data_line(results), "", "### Latency", ""]
    for r in results:
        parts += [latency_table(r), ""]
    parts += ["### Build, reopen, memory, disk", "", build_table(results), ""]
    for title, table in (
        ("### Keyword quality", quality_table(folder / "quality.json")),
        ("### End-to-end ingest", ingest_table(folder / "ingest_e2e.json")),
    ):
        if table:
            parts += [title, "", table, ""]
    md = "\n".join(parts)
    target = Path(a.md)
    if target.exists() and START in target.read_text() and not a.print:
        text = target.read_text()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1] if END in rest else ""
        target.write_text(f"{head}{START}\n{md}\n{END}{tail}")
        print(f"updated {target}")
    else:
        print(md)
    print(f"wrote {a.json} and {', '.join(str(p) for p in pngs)}", file=sys.stderr)


if __name__ == "__main__":
    main()
