#!/usr/bin/env python3
"""Benchmark knowledge that generalizes (issue #14): a person's questions on two hand-written sites.

For each site under ``tests/data/`` that has a questions file in ``tests/data/knowledge/``
(the Fernhill task-manager site and the Velokoop bike-repair co-op), runs the whole chain
offline, with the public API only:

    generate (QAGenerator) -> build (DatasetBuilder, with K rephrasings per question)
    -> train (FineTuneJob) -> gate (Discriminator, question gate) -> GuardedChatModel

and asks the guarded bot the site's hand-written questions (never generated, worded unlike
the pages). It prints, per site: pairs generated and trained, fact coverage of the pages,
on-topic questions answered with the page's fact, rephrasings answered with the fact,
on-topic questions the gate refused, off-topic questions refused, and the issue's targets
(met or not). A benchmark, not a test: it asserts nothing and exits 0 once it has measured.

Targets (each site): on-topic answered with the fact >= 80%, gate refusing no more than
1 in 12 on-topic questions, off-topic refused >= 90%, fact coverage >= 90%.

Usage:
    python bench/bench_knowledge.py                  # both sites, --augment 3
    python bench/bench_knowledge.py --augment 0      # without rephrasings, to compare
    python bench/bench_knowledge.py --site velokoop_site --show
    python bench/bench_knowledge.py --words on       # only with word knowledge

With the ``offline-words`` extra installed it measures both ways: the offline fine-tunes
matching trained words only, and knowing what words mean (WordLlama sentence vectors, as a
fine-tuned pretrained model would).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TOPICS = {"markdown_site": "Fernhill Tasks", "velokoop_site": "Velokoop Ghent"}


@dataclass
class Figures:
    """What one site's run measured."""

    site: str
    pairs: int = 0
    trained: int = 0
    coverage: float = 0.0
    uncovered: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    with_fact: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)

    def rate(self, table: dict[str, int], kind: str) -> float:
        n = self.counts.get(kind, 0)
        return table.get(kind, 0) / n if n else 0.0


def run_site(site: str, augment: int, workdir: Path, words: bool = False) -> Figures:
    from finetune_qa import (
        ChatModel,
        DatasetBuilder,
        Discriminator,
        EvalSuite,
        FineTuneJob,
        GuardedChatModel,
        OfflineBackend,
        QAGenerator,
        knowledge_scorers,
        read_qa,
    )

    t0 = time.perf_counter()
    topic = TOPICS.get(site, site)
    system = f"You are a factual chatbot that answers questions about {topic}."
    backend = OfflineBackend(word_knowledge=words)
    writer = ChatModel("gpt-4o-mini", backend=backend, system_prompt=None, stop=None)
    fig = Figures(site)

    generated = QAGenerator(writer, pairs_per_chunk=5).generate(DATA / site)
    qa_csv = generated.write_csv(workdir / "qa.csv")
    fig.pairs = len(generated.pairs)
    coverage = generated.report.coverage
    fig.coverage = coverage.ratio
    fig.uncovered = len(coverage.uncovered)

    builder = DatasetBuilder(
        system_prompt=system,
        augment=augment,
        writer=writer if augment else None,
        rephrase_cache=workdir / "rephrasings.jsonl",
    )
    builder.add_source(qa_csv)
    build = builder.build(workdir / "train.jsonl", model="gpt-4o-mini")
    fig.trained = build.train

    job = FineTuneJob.create(
        workdir / "train.jsonl", model="gpt-4o-mini", backend=backend, journal=workdir / "j.jsonl"
    )
    job.wait()
    bot = job.chat_model()

    trained = list(read_qa(qa_csv))
    gate = Discriminator.train(
        trained,
        backend=backend,
        gate="question",
        workdir=workdir / "gate",
        seed=0,
        augment=augment,
        writer=writer if augment else None,
    )
    guarded = GuardedChatModel(bot, question_gate=gate, topic=topic)

    suite = EvalSuite.from_knowledge_file(DATA / "knowledge" / f"{site}.jsonl", pages=DATA / site)
    result = suite.run(guarded, scorers=knowledge_scorers(refusal_texts=[guarded.refusal]))
    for kind in ("on_topic", "rephrasing", "off_topic"):
        fig.counts[kind] = result.sets[kind].n
        fig.with_fact[kind] = result.count(kind, "right_fact")
        fig.refused[kind] = result.count(kind, "refused")
    for case in result.cases:
        refused = bool(case.scores.get("refused"))
        hit = bool(case.scores.get("right_fact"))
        if (case.set == "off_topic") != refused or (case.set != "off_topic" and not hit):
            what = f"{case.set}{' refused' if refused else ''}"
            fig.misses.append(f"[{what}] {case.question} -> {(case.output or '')[:90]}")
    fig.seconds = time.perf_counter() - t0
    return fig


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def report(fig: Figures, show: bool) -> None:
    on, reph, off = (fig.counts.get(k, 0) for k in ("on_topic", "rephrasing", "off_topic"))
    rows = [
        ("pairs generated", str(fig.pairs), ""),
        ("training examples (with rephrasings)", str(fig.trained), ""),
        ("fact coverage", _pct(fig.coverage), ">= 90%"),
        (
            f"on-topic answered with the fact ({fig.with_fact.get('on_topic', 0)}/{on})",
            _pct(fig.rate(fig.with_fact, "on_topic")),
            ">= 80%",
        ),
        (
            f"rephrasings answered with the fact ({fig.with_fact.get('rephrasing', 0)}/{reph})",
            _pct(fig.rate(fig.with_fact, "rephrasing")),
            "",
        ),
        (
            f"on-topic refused by the gate ({fig.refused.get('on_topic', 0)}/{on})",
            _pct(fig.rate(fig.refused, "on_topic")),
            "<= 1 in 12",
        ),
        (
            f"off-topic refused ({fig.refused.get('off_topic', 0)}/{off})",
            _pct(fig.rate(fig.refused, "off_topic")),
            ">= 90%",
        ),
    ]
    print(f"\n{fig.site} ({fig.seconds:.1f} s)")
    for name, value, target in rows:
        print(f"  {name:<52} {value:>8}   {target}")
    met = {
        "coverage": fig.coverage >= 0.9,
        "on-topic with fact": fig.rate(fig.with_fact, "on_topic") >= 0.8,
        "gate refusals": fig.refused.get("on_topic", 0) * 12 <= max(on, 12),
        "off-topic refused": fig.rate(fig.refused, "off_topic") >= 0.9,
    }
    print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    if show and fig.misses:
        print("  misses:")
        for line in fig.misses:
            print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--augment", type=int, default=3, help="rephrasings per question (0: none)")
    ap.add_argument("--site", action="append", help="a site folder under tests/data (repeatable)")
    ap.add_argument("--show", action="store_true", help="print every question the bot missed")
    ap.add_argument(
        "--words",
        choices=("off", "on", "both"),
        help="word knowledge of the offline fine-tunes (the offline-words extra); "
        "default: both when installed, else off",
    )
    args = ap.parse_args(argv)
    sites = args.site or sorted(p.stem for p in (DATA / "knowledge").glob("*.jsonl"))
    have_words = importlib.util.find_spec("wordllama") is not None
    mode = args.words or ("both" if have_words else "off")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, offline backend, "
        f"--augment {args.augment}"
    )
    if not have_words and mode == "off":
        print("word knowledge: not installed (pip install 'finetune-qa[offline-words]')")
    for words in {"off": (False,), "on": (True,), "both": (False, True)}[mode]:
        print(f"\n== word knowledge {'on' if words else 'off'}")
        for site in sites:
            with tempfile.TemporaryDirectory() as d:
                report(run_site(site, args.augment, Path(d), words), args.show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
