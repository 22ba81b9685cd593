"""Render a fine-tune-versus-memory report: text tables, Markdown tables and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _nll(report: dict[str, Any], key: str, model: str) -> str:
    value = report.get("likelihood", {}).get(key, {}).get(model)
    return "-" if value is None else f"{value:.3f}"


def comparison_text(comparison: dict[str, Any]) -> str:
    """One line per fine-tuned model: how many times the base model with memory beats it."""
    parts = []
    for c in comparison["against"]:
        ratio = "inf" if c["f1_ratio"] is None else f"{c['f1_ratio']:.1f}x"
        overlap = "overlap" if c["intervals_overlap"] else "do not overlap"
        parts.append(f"{ratio} the F1 of {c['against']} (95% intervals {overlap})")
    return f"{comparison['memory']} reaches F1 {comparison['f1']:.3f}: " + "; ".join(parts)


def format_text(report: dict[str, Any]) -> str:
    """A plain-text summary for the terminal."""
    data, lines = report["data"], []
    lines.append(
        f"{len(data['articles'])} training articles, {len(data['passages'])} passages, "
        f"{data['training_pairs']} training pairs, {data['heldout_questions']} held-out "
        f"questions; forgetting: {data['forget_questions']} questions of "
        f"{len(data['forget_articles'])} other articles"
    )
    for variant, stats in report["training"].items():
        lines.append(
            f"trained {variant}: {stats['steps']} steps, {stats['examples']} examples, "
            f"{stats['epochs']} epochs, {stats['seconds']} s "
            f"({stats['seconds_per_step']} s/step), loss {stats['loss_first']} -> "
            f"{stats['loss_last']}"
        )
    lines.append("")
    lines.append(
        f"{'condition':28} {'EM':>6} {'F1':>6} {'F1 95% CI':>15} {'has':>6} {'no-ans':>6} "
        f"{'gold NLL':>8} {'s/answer':>9} {'tokens':>7}"
    )
    for row in report["results"]:
        lo, hi = row["f1_ci95"]
        lines.append(
            f"{row['condition']:28} {row['exact_match']:6.3f} {row['f1']:6.3f} "
            f"{f'[{lo:.3f}, {hi:.3f}]':>15} {row['contains_answer']:6.3f} "
            f"{row['no_answer']:6.3f} {row['gold_answer_nll']:8.3f} "
            f"{row['seconds_per_answer']:9.2f} {row['tokens_per_answer']:7.1f}"
        )
    lines += ["", comparison_text(report["comparison"])]
    forgetting = report["forgetting"]
    if forgetting["questions"]:
        lines.append("")
        lines.append(
            f"forgetting ({forgetting['questions']} closed-book questions of untrained articles)"
        )
        lines.append(
            f"{'model':16} {'EM':>6} {'F1':>6} {'has':>6} {'dF1':>7} {'ans NLL':>8} "
            f"{'passage NLL':>12}"
        )
        for row in forgetting["models"]:
            lines.append(
                f"{row['model']:16} {row['exact_match']:6.3f} {row['f1']:6.3f} "
                f"{row['contains_answer']:6.3f} {row['delta_f1']:+7.3f} "
                f"{_nll(report, 'forget_answer_nll', row['model']):>8} "
                f"{_nll(report, 'forget_passage_nll', row['model']):>12}"
            )
    lines.append("")
    lines.append(f"total {report['timings']['total_seconds']} s")
    return "\n".join(lines)


def format_markdown(report: dict[str, Any]) -> str:
    """The four-way table, the forgetting table and the training table in Markdown."""
    out = [
        "| model | memory | exact match | token F1 | F1 95% CI | contains answer | no answer "
        "| gold-answer NLL (95% CI) | seconds / answer | tokens / answer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        lo, hi = row["f1_ci95"]
        nlo, nhi = row["gold_answer_nll_ci95"]
        out.append(
            f"| {row['model']} | {'yes' if row['memory'] else 'no (closed-book)'} "
            f"| {row['exact_match']:.3f} | {row['f1']:.3f} | [{lo:.3f}, {hi:.3f}] "
            f"| {row['contains_answer']:.3f} | {row['no_answer']:.2f} "
            f"| {row['gold_answer_nll']:.3f} ({nlo:.3f}-{nhi:.3f}) "
            f"| {row['seconds_per_answer']:.2f} | {row['tokens_per_answer']:.1f} |"
        )
    out += ["", comparison_text(report["comparison"])]
    forgetting = report["forgetting"]
    if forgetting["questions"]:
        out += [
            "",
            "| model (closed-book, untrained articles) | exact match | token F1 "
            "| contains answer | F1 vs base | answer NLL | passage NLL |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in forgetting["models"]:
            out.append(
                f"| {row['model']} | {row['exact_match']:.3f} | {row['f1']:.3f} "
                f"| {row['contains_answer']:.3f} | {row['delta_f1']:+.3f} "
                f"| {_nll(report, 'forget_answer_nll', row['model'])} "
                f"| {_nll(report, 'forget_passage_nll', row['model'])} |"
            )
    out += [
        "",
        "| variant | examples | steps | epochs | tokens trained | trainable parameters "
        "| seconds | s / step | loss first -> last | trained-passage NLL | training-answer NLL |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, s in report["training"].items():
        model = f"ft-{variant}"
        out.append(
            f"| {variant} | {s['examples']} | {s['steps']} | {s['epochs']} "
            f"| {s['tokens_trained']:,} | {s['trainable_parameters']:,} | {s['seconds']} "
            f"| {s['seconds_per_step']} | {s['loss_first']} -> {s['loss_last']} "
            f"| {_nll(report, 'train_passage_nll', model)} "
            f"| {_nll(report, 'train_answer_nll', model)} |"
        )
    out.append(
        f"| (base, untrained) | | | | | | | | | {_nll(report, 'train_passage_nll', 'base')} "
        f"| {_nll(report, 'train_answer_nll', 'base')} |"
    )
    return "\n".join(out)


NLL_PANELS = (
    ("train_passage_nll", "trained\npassages"),
    ("train_answer_nll", "training\nanswers"),
    ("heldout_answer_nll", "held-out\nanswers"),
    ("forget_answer_nll", "untrained\narticles'\nanswers"),
    ("forget_passage_nll", "untrained\narticles'\npassages"),
)


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """A three-panel PNG: token F1 per model (closed-book / memory), closed-book F1 on untrained
    articles (forgetting), and mean negative log-likelihoods per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    f1 = {(r["model"], r["memory"]): r["f1"] for r in rows}
    fig, (left, middle, right) = plt.subplots(
        1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 2, 4]}
    )
    width = 0.38
    xs = range(len(models))
    for offset, memory, label in ((-width / 2, False, "closed-book"), (width / 2, True, "memory")):
        values = [f1[(m, memory)] for m in models]
        bars = left.bar([x + offset for x in xs], values, width, label=label)
        left.bar_label(bars, fmt="%.3f", fontsize=8)
    left.set_xticks(list(xs), models)
    left.set_ylabel("token F1")
    left.set_title(f"{report['data']['heldout_questions']} held-out questions")
    left.legend()
    forgetting = report["forgetting"]
    if forgetting["questions"]:
        names = [r["model"] for r in forgetting["models"]]
        bars = middle.bar(names, [r["f1"] for r in forgetting["models"]], color="tab:gray")
        middle.bar_label(bars, fmt="%.3f", fontsize=8)
        middle.set_ylabel("token F1, closed-book")
        middle.set_title(f"untrained articles ({forgetting['questions']} questions)")
    else:
        middle.axis("off")
    likelihood = report.get("likelihood", {})
    panels = [(k, label) for k, label in NLL_PANELS if any(likelihood.get(k, {}).values())]
    step = 0.8 / max(1, len(models))
    for n, model in enumerate(models):
        values = [likelihood[k].get(model) or 0.0 for k, _ in panels]
        right.bar(
            [i + (n - (len(models) - 1) / 2) * step for i in range(len(panels))],
            values,
            step,
            label=model,
        )
    right.set_xticks(range(len(panels)), [label for _, label in panels], fontsize=8)
    right.set_ylabel("mean NLL, nats per token (lower: more likely)")
    right.set_title("likelihood under each model")
    right.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
