"""``engram experiment finetune-vs-memory`` at toy size, on a made-up SQuAD-format file."""

from __future__ import annotations

import json

import pytest

from engram.cli import main
from engram.errors import EngramError
from engram.experiment.finetune import ExperimentConfig, load_data, select

# Made-up articles: two paragraphs each, three questions per paragraph (answers are spans).
ARTICLES = {
    "Orrin_Vale_Kiln": [
        (
            "The Orrin Vale kiln was fired for the first time in 1887 by the potter Maud "
            "Tessier. It burned beech wood and reached its working heat after nineteen hours.",
            [
                ("Who first fired the Orrin Vale kiln?", "Maud Tessier"),
                ("What wood did the Orrin Vale kiln burn?", "beech wood"),
                ("In what year was the Orrin Vale kiln first fired?", "1887"),
            ],
        ),
        (
            "The kiln's chimney was rebuilt in 1921 with yellow brick from Dunmere. A flood in "
            "1950 closed the kiln for good.",
            [
                ("When was the kiln's chimney rebuilt?", "1921"),
                ("Where did the chimney's yellow brick come from?", "Dunmere"),
                ("What closed the kiln for good?", "A flood"),
            ],
        ),
    ],
    "Lisk_Canal": [
        (
            "The Lisk canal links the mill town of Carrow to the estuary. Its eleven locks were "
            "cut by hand, and the towpath was paved with blue slate from Penmoor.",
            [
                ("Which town does the Lisk canal link to the estuary?", "Carrow"),
                ("How many locks does the Lisk canal have?", "eleven"),
                ("Where did the slate of the towpath come from?", "Penmoor"),
            ],
        ),
        (
            "Barges on the Lisk carried coal and wool until 1939, pulled by horses named after "
            "rivers. The last barge master was Idris Penhale.",
            [
                ("What did barges on the Lisk carry?", "coal and wool"),
                ("Who was the last barge master?", "Idris Penhale"),
                ("Until what year did barges carry cargo?", "1939"),
            ],
        ),
    ],
    "Hallam_Orchard": [
        (
            "The Hallam orchard grows a pear called the Winter Lantern. Its fruit is picked in "
            "late October and stored in straw until the new year.",
            [
                ("Which pear grows in the Hallam orchard?", "the Winter Lantern"),
                ("When is the Winter Lantern picked?", "late October"),
                ("What is the fruit stored in?", "straw"),
            ],
        ),
        (
            "The orchard was planted by the Quaker family Ashdown in 1802 on a south-facing "
            "slope above the river Wend.",
            [
                ("Which family planted the Hallam orchard?", "Ashdown"),
                ("In what year was the orchard planted?", "1802"),
                ("Above which river is the orchard?", "Wend"),
            ],
        ),
    ],
}


def squad_file(tmp_path):
    data = []
    for title, paragraphs in ARTICLES.items():
        paras = []
        for n, (context, qas) in enumerate(paragraphs):
            paras.append(
                {
                    "context": context,
                    "qas": [
                        {
                            "id": f"{title}-{n}-{i}",
                            "question": q,
                            "answers": [{"text": a, "answer_start": context.find(a)}],
                        }
                        for i, (q, a) in enumerate(qas)
                    ],
                }
            )
        data.append({"title": title, "paragraphs": paras})
    path = tmp_path / "toy-squad.json"
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path


def test_selection_holds_out_disjoint_questions(tmp_path):
    docs, questions = load_data(squad_file(tmp_path))
    cfg = ExperimentConfig(articles=2, passages=2, questions=3, forget_articles=1, seed=5)
    sel = select(docs, questions, cfg)
    assert sel.articles == select(docs, questions, cfg).articles  # seeded
    assert len(sel.heldout) == 6 and len(sel.passages) == 4
    held, trained = {q["id"] for q in sel.heldout}, {q["id"] for q in sel.train_qa}
    assert not held & trained and len(held | trained) == 12
    # every passage keeps training questions, and held-out questions come from trained passages
    passages = {p.id for p in sel.passages}
    assert {q["passage"] for q in sel.train_qa} == passages
    assert {q["passage"] for q in sel.heldout} <= passages
    assert not set(sel.forget_articles) & set(sel.articles)
    assert len(sel.forget) == 6 and all(q["article"] in sel.forget_articles for q in sel.forget)


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    path = squad_file(tmp_path)
    docs, questions = load_data(path)
    with pytest.raises(EngramError, match="--articles 4 is too many"):
        select(docs, questions, ExperimentConfig(articles=4, passages=1))
    with pytest.raises(EngramError, match="--questions 3 is too many"):
        select(docs, questions, ExperimentConfig(articles=1, passages=1, questions=3))
    with pytest.raises(EngramError, match="--forget-articles 2 is too many"):
        select(docs, questions, ExperimentConfig(articles=2, passages=1, forget_articles=2))
    with pytest.raises(EngramError, match="no such file"):
        load_data(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"data": [{"title": "x"}]}')
    with pytest.raises(EngramError, match="not a SQuAD-format"):
        load_data(tmp_path / "other.json")
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(EngramError, match="not a SQuAD-format"):
        load_data(tmp_path / "junk.json")
    cmd = ["experiment", "finetune-vs-memory", str(path), "--articles", "9", "--quiet"]
    assert main(cmd) == 1
    assert "--articles 9 is too many" in capsys.readouterr().err
    assert main(["experiment", "finetune-vs-memory", str(tmp_path / "nope.json")]) == 1
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "finetune-vs-memory", str(path), "--variants", "lora"])


@pytest.mark.slow
def test_toy_experiment_end_to_end(tmp_path, generator, embedder):
    import torch

    from engram.experiment import run_experiment
    from engram.experiment.report import format_markdown, format_text, plot

    base_params = {k: v.clone() for k, v in generator.model.state_dict().items() if "layers.0" in k}
    prompt = [{"role": "user", "content": "Who first fired the Orrin Vale kiln?"}]
    before = generator.complete(prompt, max_tokens=8)
    cfg = ExperimentConfig(
        articles=2,
        passages=1,
        questions=1,
        forget_articles=1,
        forget_questions=2,
        steps=2,
        batch=2,
        block_tokens=32,
        lr=5e-3,
        rank=4,
        max_tokens=6,
    )
    out = tmp_path / "run"
    result = run_experiment(
        squad_file(tmp_path), cfg, generator=generator, embedder=embedder, out=out
    )
    report = result.report

    # structure: six conditions (base and two fine-tunes, closed-book and with memory)
    conditions = {(r["model"], r["memory"]) for r in report["results"]}
    models = {"base", "ft-passages", "ft-qa"}
    assert conditions == {(m, memory) for m in models for memory in (False, True)}
    for row in report["results"]:
        assert row["questions"] == 2
        assert 0 <= row["exact_match"] <= row["f1"] <= 1
        assert row["seconds_per_answer"] > 0 and 0 <= row["tokens_per_answer"] <= 6
        assert (row["gold_passage_recalled"] is None) != row["memory"]
        lo, hi = row["f1_ci95"]
        assert 0 <= lo <= row["f1"] <= hi <= 1
        assert row["gold_answer_nll"] > 0
    assert [c["against"] for c in report["comparison"]["against"]] == [
        "ft-passages, closed-book",
        "ft-qa, closed-book",
    ]
    assert {r["model"] for r in report["forgetting"]["models"]} == models
    assert report["forgetting"]["questions"] == 2
    base_row = next(r for r in report["forgetting"]["models"] if r["model"] == "base")
    assert base_row["delta_f1"] == 0
    for variant in ("passages", "qa"):
        stats = report["training"][variant]
        assert stats["steps"] == 2 and len(stats["losses"]) == 2 and stats["seconds"] > 0
        assert (out / f"adapter-{variant}" / "adapter_config.json").exists()
    assert report["data"]["training_pairs"] == report["data"]["exported_pairs"] == 4
    assert len((out / "dataset-qa" / "train.jsonl").read_text().splitlines()) == 4
    assert json.loads((out / "report.json").read_text())["results"] == report["results"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2

    # the adapters changed the model: logits differ, and the QA fine-tune made its own
    # training answers more likely than the base model finds them
    ids = generator.tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.inference_mode():
        base_logits = generator.model(input_ids=ids).logits
        for variant in ("passages", "qa"):
            tuned = result.trained[variant].model(input_ids=ids).logits
            assert float((tuned - base_logits).abs().max()) > 1e-3
    nll = report["likelihood"]["train_answer_nll"]
    assert nll["ft-qa"] < nll["base"]
    passage_nll = report["likelihood"]["train_passage_nll"]
    assert passage_nll["ft-passages"] < passage_nll["base"]

    # the shared base model is untouched
    after = generator.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base_params.items())
    assert generator.complete(prompt, max_tokens=8) == before

    text, table = format_text(report), format_markdown(report)
    assert "ft-qa, memory" in text and "| ft-passages | yes |" in table
    assert plot(report, tmp_path / "plot.png").stat().st_size > 1000
