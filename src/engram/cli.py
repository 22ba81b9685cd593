"""The ``engram`` command line. ``engram COMMAND --help`` documents each command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engram.cli_demo import cmd_demo
from engram.cli_help import (
    EMBEDDERS,
    GENERATORS,
    apply_formatter,
    env_choice,
    missing_extra_hint,
    parse_pairs,
    quiet_model_loading,
    retrieval_environment,
    version_string,
)
from engram.config import READERS
from engram.errors import EngramError

DESCRIPTION = (
    "Engram: an open memory store for foundation models. Add files, search them with hybrid\n"
    "(keyword + vector) recall, and ask questions answered with cited sources.\n"
    "'engram COMMAND --help' documents each command."
)

EPILOG = (
    "The store is --store, else $ENGRAM_STORE, else ./engram.db. A store remembers the embedder\n"
    "it was made with; $ENGRAM_EMBEDDER and $ENGRAM_GENERATOR set --embedder and --generator,\n"
    "$ENGRAM_RETRIEVAL sets --retrieval."
)


def _store(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("ENGRAM_STORE") or "engram.db"


def _memory(
    args: argparse.Namespace, generator: str | None = None, create: bool = False, **options: Any
):
    """The Memory of ``--store``; only commands that write (``add``, ``demo``) create it."""
    from engram.memory import Memory

    generator = generator or getattr(args, "generator", None)
    if generator:
        options["generator"] = generator
    if getattr(args, "threads", None):
        options["threads"] = args.threads
    if getattr(args, "embedder", None):
        options["embedder"] = args.embedder
    return Memory(_store(args), create=create, **options)


def _meta(pairs: list[str]) -> dict[str, Any]:
    return parse_pairs(pairs, "--meta")


def _where(clauses: list[str] | None) -> dict[str, Any] | None:
    from engram.store.filters import parse_where

    parsed = [parse_where(c) for c in clauses or []]
    parsed = [p for p in parsed if p]
    if not parsed:
        return None
    return parsed[0] if len(parsed) == 1 else {"$and": parsed}


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def cmd_add(args: argparse.Namespace) -> int:
    from engram.ingest import load_stream

    options: dict[str, Any] = {"max_file_mb": args.max_file_mb}
    if args.chunk_tokens:
        options["chunk_tokens"] = args.chunk_tokens
    with _memory(args, create=True, **options) as mem:
        items: list[Any] = []
        for p in args.paths:
            if p == "-":
                stream = sys.stdin.buffer
                items.extend(load_stream(stream, name="stdin", format=args.format or "text"))
            else:
                path = Path(p)
                if not path.exists():
                    raise EngramError(f"{p}: no such file or folder")
                items.append(path)
        report = mem.add(
            items,
            namespace=args.namespace,
            metadata=_meta(args.meta),
            progress=not args.quiet and sys.stderr.isatty(),
            on_error="skip",
        )
    return _add_summary(args, report)


def _add_summary(args: argparse.Namespace, report: Any) -> int:
    """Print what ``add`` did, each skipped input once; the exit status: 1 when inputs were
    skipped and nothing was read (or any skip under ``--strict``)."""
    if args.json:
        _print_json(report.to_dict())
    else:
        sources = len(report.by_source)
        skipped = (
            f"; skipped {report.skipped} inputs ({sources} source{'s' * (sources != 1)})"
            if report.skipped
            else ""
        )
        print(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"empty {report.empty}; {report.chunks} chunks ({report.embedded} embedded)" + skipped
        )
        for line in report.skip_summary():
            print(f"skipped: {line}", file=sys.stderr)
        for entry in report.ignored:
            print(f"not ingested: {entry}", file=sys.stderr)
    read = report.added + report.updated + report.unchanged + report.empty
    if report.skipped and (getattr(args, "strict", False) or not read):
        return 1
    return 0


def _snippet(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_search(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        hits = mem.search(
            args.query,
            k=args.k,
            mode=args.mode,
            where=_where(args.where),
            namespace=args.namespace,
            alpha=args.alpha,
            fusion=args.fusion,
            with_vectors=args.clusters,
        )
        clusters = None
        if args.clusters:
            from engram.cluster import cluster_hits

            clusters = cluster_hits(hits, threshold=mem.config.cluster_threshold)
    if args.json:
        if clusters is not None:
            _print_json(
                [
                    {
                        "label": c.label,
                        "keywords": c.keywords,
                        "score": c.score,
                        "hits": [h.to_dict(args.explain) for h in c.hits],
                    }
                    for c in clusters
                ]
            )
        else:
            _print_json([h.to_dict(with_scores=args.explain) for h in hits])
        return 0
    if not hits:
        print("no results")
        return 0
    groups = [(c.label, c.hits) for c in clusters] if clusters is not None else [(None, hits)]
    for label, group in groups:
        if label is not None:
            print(f"== {label}")
        for h in group:
            print(f"[{h.id}] {h.score:.4f}  {h.source or h.doc_id}")
            print(f"    {_snippet(h.text)}")
            if args.explain:
                print("    " + "  ".join(f"{k}={v:.4g}" for k, v in h.scores.items()))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    where = _where(args.where)
    if not args.ids and not where and not args.chunk:
        raise EngramError("delete needs document ids, --chunk ids or --where FILTER")
    with _memory(args) as mem:
        n = mem.delete(
            args.ids or None,
            where=where,
            namespace=args.namespace,
            chunk_ids=args.chunk or None,
            reason=args.reason,
        )
    print(f"deleted {n} chunks")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        stats = mem.stats()
        stats["namespaces"] = mem.namespaces()
    if args.json:
        _print_json(stats)
    else:
        for key, value in stats.items():
            if key == "namespaces":
                for ns in value:
                    print(
                        f"namespace {ns['name']}: {ns['documents']} documents, "
                        f"{ns['chunks']} chunks"
                    )
            else:
                print(f"{key}: {value}")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        if args.metadata:
            names = mem.index_metadata(*args.metadata)
            print("metadata indexes: " + (", ".join(names) or "none needed on this backend"))
            return 0
        counts = mem.reindex()
    print(", ".join(f"{k}: {v} chunks" for k, v in counts.items()))
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        out = mem.optimize()
    print(", ".join(f"{k}: {v}" for k, v in out.items()) or "nothing to optimize on this backend")
    return 0


def cmd_namespaces(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        rows = mem.namespaces()
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']}\t{r['documents']} documents\t{r['chunks']} chunks")
    return 0


def _print_answer_sources(answer: Any) -> None:
    if answer.no_answer:
        if answer.ungrounded:
            print(f"(the model said {answer.raw!r}, which the recalled passages do not back)")
        elif answer.raw and answer.evidence:
            print(
                f"(best guess {answer.raw!r} at confidence {answer.confidence:.2f}, "
                "below the threshold)"
            )
        return
    for e in answer.evidence:
        print(f'\nEvidence [{e.source.number}]: "{_snippet(e.text, 200)}"')
    if answer.reader:
        print(f"Confidence {answer.confidence:.2f} ({answer.reader} reader)")
    if answer.citations:
        note = " (attributed by overlap: the model did not cite)" if answer.attributed else ""
        print(f"\nSources{note}:")
        for s in answer.citations:
            print(
                f"  [{s.number}] {s.hit.source or s.hit.doc_id} (chunk {s.hit.id}): "
                f"{_snippet(s.hit.text, 120)}"
            )
    else:
        print("\n(no source supports this answer: treat it with care)")
    if answer.unknown_citations:
        print(f"  removed citations of unknown sources: {answer.unknown_citations}")


def cmd_ask(args: argparse.Namespace) -> int:
    persona = Path(args.persona).read_text(encoding="utf-8") if args.persona else None
    options: dict[str, Any] = {}
    if args.max_tokens:
        options["answer_max_tokens"] = args.max_tokens
    with _memory(args, **options) as mem:
        stream = not args.json and not args.show_prompt

        def write(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        answer = mem.ask(
            args.question,
            k=args.k,
            namespace=args.namespace,
            where=_where(args.where),
            persona=persona,
            on_token=write if stream else None,
            prompt_only=args.show_prompt,
            reader=args.reader,
        )
    if args.show_prompt:
        print(
            answer.prompt.text
            if answer.prompt
            else "(no evidence recalled: the model would not be called)"
        )
        return 0
    if args.json:
        _print_json(answer.to_dict())
        return 0
    if answer.raw != answer.answer and not answer.no_answer:
        print(f"\n\nAnswer (checked): {answer.answer}")
    else:
        print()
    _print_answer_sources(answer)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from engram.errors import StoreNotFoundError
    from engram.store import open_store

    try:
        open_store(_store(args), create=False).close()
        print(f"{_store(args)} already holds a store")
    except StoreNotFoundError:
        open_store(_store(args)).close()
        print(f"created an empty store at {_store(args)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from engram.check import check_store

    findings = check_store(_store(args), repair=args.repair)
    if args.json:
        _print_json([f.__dict__ for f in findings])
    else:
        for f in findings:
            print(f.line())
    bad = [f for f in findings if not f.ok and not f.repaired]
    if bad and not args.json:
        hint = "" if args.repair else "; `engram check --repair` rebuilds damaged indexes"
        print(f"engram: {len(bad)} problem(s) found{hint}", file=sys.stderr)
    return 1 if bad else 0


def add_store_parsers(sub: Any) -> None:
    i = sub.add_parser("init", help="create an empty store (add also creates one)")
    i.set_defaults(func=cmd_init)
    c = sub.add_parser(
        "check", help="verify the SQL store, its changelog and every index file's checksum"
    )
    c.add_argument("--repair", action="store_true", help="rebuild damaged indexes from the store")
    c.add_argument("--json", action="store_true", help="print a JSON list of findings")
    c.set_defaults(func=cmd_check)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=version_string())
    p.add_argument(
        "--store", help="SQLite file or postgresql:// URL (default: $ENGRAM_STORE or ./engram.db)"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="threads for local models and index builds (default: $ENGRAM_THREADS, else the cores)",
    )
    p.add_argument(
        "--embedder",
        choices=EMBEDDERS,
        help="embedding model: onnx (int8 all-MiniLM-L6-v2, no torch), local (the same model on "
        "torch; models extra) or openai (default: $ENGRAM_EMBEDDER, else the one the store was "
        "made with, else onnx)",
    )
    p.add_argument(
        "--retrieval",
        metavar="URL",
        help="where search runs: local (index files beside a SQLite store; inside the database "
        "for postgresql://), milvus://HOST:PORT/NAME (a Milvus server or cluster, collection "
        "NAME) or milvus-lite:PATH (embedded Milvus Lite; milvus extra) (default: "
        "$ENGRAM_RETRIEVAL, else local)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_add_parser(sub)
    _add_search_parser(sub)
    _add_store_commands(sub)
    _add_ask_parser(sub)
    from engram.evaluate.cli import add_eval_parsers

    esub = add_eval_parsers(sub)
    from engram.adversarial.cli import add_poisoning_parser
    from engram.agents.cli import add_chat_parser, add_episodes_parser, add_locomo_parser
    from engram.experiment.cli import add_experiment_parser
    from engram.export_cli import add_export_parser
    from engram.server.cli import add_server_parsers
    from engram.sql.cli import add_sql_parser

    add_locomo_parser(esub)
    add_poisoning_parser(esub)
    add_chat_parser(sub)
    add_episodes_parser(sub)
    add_server_parsers(sub)
    add_export_parser(sub)
    add_experiment_parser(sub)
    add_sql_parser(sub)
    add_store_parsers(sub)

    from engram.cli_browse import add_browse_parsers

    add_browse_parsers(sub)
    apply_formatter(p)
    return p


def _add_add_parser(sub: Any) -> None:
    a = sub.add_parser("add", help="add files, folders or stdin (-) to memory")
    a.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, or - for stdin")
    a.add_argument("--namespace", default="default", help="namespace to add into")
    a.add_argument(
        "--meta",
        action="append",
        metavar="KEY=VALUE",
        help="metadata for every document (repeatable; values parsed as JSON; default: none)",
    )
    a.add_argument(
        "--format",
        choices=["text", "md", "html", "json", "jsonl", "csv"],
        help="format of stdin (default: text)",
    )
    a.add_argument("--max-file-mb", type=float, default=20.0, help="skip larger files")
    a.add_argument("--chunk-tokens", type=int, help="chunk size in model tokens (default: 200)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.add_argument(
        "--strict", action="store_true", help="exit 1 when any input is skipped (default: 0)"
    )
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.set_defaults(func=cmd_add)


def _add_search_parser(sub: Any) -> None:
    s = sub.add_parser("search", help="recall chunks for a query")
    s.add_argument("query", help="what to look for, in plain words")
    s.add_argument("--k", type=int, default=10, help="hits to return")
    s.add_argument(
        "--mode", choices=["hybrid", "keyword", "vector"], help="retrievers (default: hybrid)"
    )
    s.add_argument(
        "--where",
        action="append",
        metavar="FILTER",
        help="filter: JSON, or key=value / key>=n / key~text joined by 'and' (default: none)",
    )
    s.add_argument("--namespace", help="namespace (default: 'default'; '*' for all)")
    s.add_argument("--alpha", type=float, help="vector weight in fusion, 0..1 (default: 0.5)")
    s.add_argument(
        "--fusion",
        choices=["blend", "rrf", "learned"],
        help="blend: weighted normalised scores; rrf: reciprocal rank fusion; learned: keyword "
        "z-score plus weighted cosines (default: blend)",
    )
    s.add_argument("--clusters", action="store_true", help="group hits into labelled clusters")
    s.add_argument("--explain", action="store_true", help="show every stage's scores")
    s.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {id, score, text, metadata, source, ...}",
    )
    s.set_defaults(func=cmd_search)


def _add_store_commands(sub: Any) -> None:
    """delete, stats, reindex, namespaces."""
    d = sub.add_parser("delete", help="delete documents by id or filter")
    d.add_argument("ids", nargs="*", metavar="DOC_ID", help="document ids (default: none)")
    d.add_argument(
        "--where", action="append", metavar="FILTER", help="delete what matches (default: none)"
    )
    d.add_argument(
        "--chunk",
        type=int,
        action="append",
        metavar="CHUNK_ID",
        help="delete single chunks (repeatable; default: none)",
    )
    d.add_argument("--namespace", default="default", help="namespace to delete from")
    d.add_argument("--reason", default="", help="recorded in the audit log (default: empty)")
    d.set_defaults(func=cmd_delete)

    st = sub.add_parser("stats", help="counts, sizes, model and index state")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=cmd_stats)

    r = sub.add_parser("reindex", help="rebuild the keyword and vector indexes from the store")
    r.add_argument(
        "--metadata",
        action="append",
        metavar="KEY",
        help="instead, add an SQL index on metadata KEY (repeatable): fast selective filters "
        "(default: none)",
    )
    r.set_defaults(func=cmd_reindex)

    o = sub.add_parser(
        "optimize",
        help="build or extend the approximate vector index now, in bulk (and merge the keyword "
        "segments bulk loads left)",
    )
    o.set_defaults(func=cmd_optimize)

    n = sub.add_parser("namespaces", help="list namespaces")
    n.add_argument("--json", action="store_true", help="print JSON")
    n.set_defaults(func=cmd_namespaces)


def _add_ask_parser(sub: Any) -> None:
    """ask, and demo (which asks the bundled questions)."""
    q = sub.add_parser("ask", help="answer a question from memory, citing sources")
    q.add_argument("question", help="the question, in plain words")
    q.add_argument("--k", type=int, help="hits recalled as evidence (default: 6)")
    q.add_argument("--namespace", help="namespace (default: 'default'; '*' for all)")
    q.add_argument(
        "--where", action="append", metavar="FILTER", help="filter the evidence (default: none)"
    )
    q.add_argument(
        "--generator",
        choices=GENERATORS,
        help="model (default: $ENGRAM_GENERATOR, else local SmolLM2-135M-Instruct, models extra; "
        "openai reads ENGRAM_LLM_BASE_URL, ENGRAM_LLM_MODEL, ENGRAM_LLM_API_KEY)",
    )
    q.add_argument(
        "--persona", metavar="FILE", help="a persona/system block to add (default: none)"
    )
    q.add_argument("--max-tokens", type=int, help="answer length limit (default: 128)")
    q.add_argument("--show-prompt", action="store_true", help="print the exact prompt, no answer")
    q.add_argument(
        "--reader",
        choices=READERS,
        help="extract (a span of the evidence, scored by the model), generate (free text), "
        "or auto: extract for small local models (default: auto)",
    )
    q.add_argument(
        "--json",
        action="store_true",
        help="print {answer, no_answer, confidence, reader, evidence: [{text, number, source}], "
        "citations: [{id, source, text}], clusters: [{label, ids}]}",
    )
    q.set_defaults(func=cmd_ask)

    dm = sub.add_parser("demo", help="ingest the bundled sample corpus, search and answer")
    dm.add_argument("--questions", type=int, default=3, help="answerable questions to ask")
    dm.add_argument("--no-answers", action="store_true", help="search only, no model")
    dm.set_defaults(func=cmd_demo)


def _apply_environment(args: argparse.Namespace) -> None:
    """``ENGRAM_EMBEDDER`` / ``ENGRAM_GENERATOR`` stand in for flags that were not given."""
    if getattr(args, "embedder", None) is None:
        args.embedder = env_choice("ENGRAM_EMBEDDER", EMBEDDERS)
    if getattr(args, "generator", None) is None:
        args.generator = env_choice("ENGRAM_GENERATOR", GENERATORS)


def main(argv: list[str] | None = None) -> int:
    quiet_model_loading()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _apply_environment(args)
        with retrieval_environment(getattr(args, "retrieval", None)):
            return args.func(args)
    except EngramError as exc:
        print(f"engram: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        hint = missing_extra_hint(exc, args.command)
        if hint is None:
            raise
        print(f"engram: error: {hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "engram: interrupted; committed documents are kept, re-run to resume", file=sys.stderr
        )
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
