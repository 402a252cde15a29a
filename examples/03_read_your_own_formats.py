"""Read question/answer pairs from your own files: pair CSV, pairs JSONL and chat JSONL.

Shows: ``QASource`` detecting each layout, custom column names, every pair carrying the
file and line it came from, and the ``ReadIssue`` list of pairs that could not be used
(empty answers, missing cells, multi-turn chats), each with its reason and line. Ends by
building one training file from all three sources.

The three small files are written to a temporary directory (or to argv[1]) first, so the
example runs anywhere, offline, with no API key:

    python examples/03_read_your_own_formats.py
    python examples/03_read_your_own_formats.py out/
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from finetune_qa import DatasetBuilder, QASource

# A helpdesk export: one pair per row, with its own column names and an extra column.
PAIR_CSV = """\
id,Prompt,Completion,owner
1,How do I export a notebook?,"Open the notebook, then choose Export and a format.",ana
2,Can I print a note?,Yes. Use Print in the note's menu.,ben
3,Is there a dark theme?,,ana
4,Where are attachments stored?
"""

# One JSON object per line; extra keys are ignored.
PAIRS = [
    {"question": "Does Lumen Notes support tags?", "answer": "Yes, up to 50 per note.", "id": 7},
    {"question": "  Can I nest notebooks?  ", "answer": "Yes, three levels deep."},
    {"question": "Is there an API?", "answer": "   "},
]

# Existing chat fine-tuning data; only single-turn examples are QA pairs.
CHAT = [
    {
        "messages": [
            {"role": "system", "content": "You answer questions about Lumen Notes."},
            {"role": "user", "content": "Can I undo a deleted note?"},
            {"role": "assistant", "content": "Yes, from Trash within 30 days. **STOP**"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Do you sync?"},
            {"role": "assistant", "content": "Yes, across all your devices."},
        ]
    },
]


def write_inputs(workdir: Path) -> list[Path]:
    pair_csv = workdir / "helpdesk.csv"
    pair_csv.write_text(PAIR_CSV, encoding="utf-8")
    pairs_jsonl = workdir / "pairs.jsonl"
    pairs_jsonl.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    chat_jsonl = workdir / "chat.jsonl"
    chat_jsonl.write_text("".join(json.dumps(c) + "\n" for c in CHAT), encoding="utf-8")
    return [pair_csv, pairs_jsonl, chat_jsonl]


def show(source: QASource) -> None:
    columns = ""
    if source.question_column is not None:  # chat_jsonl has roles, not columns
        columns = f", question/answer from {source.question_column!r}/{source.answer_column!r}"
    print(f"{source.path}: format {source.format}{columns}")
    for pair in source.pairs():
        where = pair.source.render() if pair.source else "?"
        print(f"  pair  {where}: {pair.question!r} -> {pair.answer!r}")
    for issue in source.issues:
        print(f"  issue {issue.reason}: {issue.render()}")


def run(workdir: Path) -> int:
    pair_csv, pairs_jsonl, chat_jsonl = write_inputs(workdir)
    print(f"Wrote three small input files to {workdir}.")
    print()
    # Custom column names: say which ones, and that the file holds one pair per row
    # (with custom names, format="auto" would assume the seed layout of numbered lists).
    show(
        QASource(pair_csv, format="pairs_csv", question_column="Prompt", answer_column="Completion")
    )
    print()
    show(QASource(pairs_jsonl))  # detected from the extension and the first line
    print()
    show(QASource(chat_jsonl, stop="**STOP**"))  # the old stop marker is removed

    print()
    print("One training file from all three sources:")
    report = (
        DatasetBuilder(min_question_length=0, min_answer_length=0)
        .add_source(
            pair_csv, format="pairs_csv", question_column="Prompt", answer_column="Completion"
        )
        .add_source(pairs_jsonl)
        .add_source(chat_jsonl, stop="**STOP**")
        .build(workdir / "train.jsonl")
    )
    print(f"  read {report.read} = kept {report.kept} + dropped {report.dropped}")
    for reason, drop in report.dropped_by_reason.items():
        print(f"  dropped as {reason}: {drop.count}")
    for reason, change in report.changed_by_reason.items():
        print(f"  changed ({reason}): {change.count}")
    for note in report.notes:  # what the build did with the chat file's own settings
        print(f"  note: {note}")
    return 0 if report.reconciles else 1


def main() -> int:
    if len(sys.argv) > 1:
        workdir = Path(sys.argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="finetune-qa-example-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
