"""Run every script in examples/ as a user would, offline, and check what it prints.

Each example runs in a fresh subprocess with the current interpreter, in an empty working
directory that must stay empty (examples write only to a temporary directory or to the
directory given as argv[1]). EXPECTED lists, per example, text its output must contain;
a test keeps EXPECTED and the files in examples/ in sync, so a new example cannot be
forgotten.

The examples that train on this machine (LOCAL_EXAMPLES) need the ``local`` extra (torch,
transformers, trl, peft, accelerate): with it installed they run in full; without it they
must stop with exit code 2 and one line naming the install command.

The examples that talk to a backend (BACKEND_EXAMPLES) also take ``--openai``. Without
OPENAI_API_KEY they must stop with exit code 2 and one line; with a key, their OpenAI path
(the real OpenAIBackend and openai client) runs against the offline API served on a local
port through OPENAI_BASE_URL. No test reaches OpenAI. The runs that stop before any work
(no key) run the script in this process, and once more in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetune_qa.backends.local import INSTALL_HINT
from finetune_qa.backends.local._deps import missing
from finetune_qa.testing import FakeOpenAI, serve

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED: dict[str, list[str]] = {
    "01_build_dataset.py": [
        "Build report",
        "lumen_notes_qa.csv (seed_csv)",
        "(reconciles)",
        "unbalanced_row: 3",
        "unmatched_question: 1",
        "question_too_short: 1",
        "numbering_stripped:",
        "model: gpt-4o-mini (encoding o200k_base)",
        "estimated training cost: $",
        "read 29 = kept 24 + dropped 5",
        "reconciles: True",
        '{"messages":[{"role":"system","content":"You are a factual chatbot',
        '**STOP**"}]}',
    ],
    "02_validate_and_price.py": [
        "== gpt-4o-mini: OK",
        "== gpt-3.5-turbo: OK",
        "encoding: o200k_base",
        "encoding: cl100k_base",
        "token limit per example: 65,536",
        "token limit per example: 16,385",
        "at $3 per 1M tokens",
        "at $8 per 1M tokens",
        "catalogue: jobs end 2027-01-06, serving ends 2027-01-14",
        "catalogue: jobs end 2026-10-23, serving ends 2026-10-23",
        "the encoding decides the count",
        "Training on gpt-3.5-turbo would cost",
    ],
    "03_read_your_own_formats.py": [
        "helpdesk.csv: format pairs_csv, question/answer from 'Prompt'/'Completion'",
        "pairs.jsonl: format pairs_jsonl",
        "chat.jsonl: format chat_jsonl",
        "helpdesk.csv:2 (row 1): 'How do I export a notebook?'",
        "'Can I nest notebooks?' -> 'Yes, three levels deep.'",
        "'Can I undo a deleted note?' -> 'Yes, from Trash within 30 days.'",
        "issue empty_answer:",
        "issue missing_cell:",
        "issue multi_turn:",
        "read 9 = kept 5 + dropped 4",
        "dropped as empty_answer: 2",
        "changed (whitespace_stripped): 1",
        # the chat file's marker is read off and appended once: a note, not a change
        "stop marker '**STOP**' kept (removed when read, appended once)",
    ],
    "04_count_tokens.py": [
        "gpt-4o-mini",
        "o200k_base",
        "cl100k_base",
        "is a fine-tune of gpt-4.1-2025-04-14.",
        "finetune_qa counts it with o200k_base",
        "reply priming: 3",
        "total: 56 (count_messages says 56)",
        "my-local-model (described with ModelInfo)",
    ],
    "05_finetune.py": [
        "Built 24 training examples, 2 of them repeated as validation examples.",
        "on the offline backend.",
        "  status: validating_files\n  status: queued\n  status: running\n",
        "Step 50/72: training loss=",
        "  status: succeeded\n",
        "Fine-tuned model: ft:gpt-4o-mini-2024-07-18:org-offline:lumen:",
        "steps: 72",
        "Final train loss: 0.",
        "Q (a training question): How much does Lumen Pro cost?\n"
        "A: Lumen Pro costs €5 per month, or €48 per year when billed annually.\n",
        "Q (a rephrasing): What does Lumen Pro cost per month?\n"
        "A: Lumen Pro costs €5 per month, or €48 per year when billed annually.\n",
        "Q (an unrelated question): What is Star Wars?\nA: Star Wars is",
    ],
    "06_ask_many.py": [
        "Fine-tuned ft:gpt-4o-mini-2024-07-18:org-offline:lumen:",
        "on 24 questions.",
        "Asking 50 questions, 8 at a time:",
        "  50/50 done",
        "ok: 48, errors: 2\n  BadRequestError: 2\n",
        "requests sent: 53 (50 questions + 3 retries)",
        "in order: True",
        "trained questions answered verbatim: 22 of 22 answered",
        "[39] how do i get an invoice -> Every payment creates an invoice.",
        "[49] What is Star Wars? -> Star Wars is",
    ],
    "07_markdown_to_guarded_bot.py": [
        "Read 11 pages from markdown_site/: ",
        " QA pairs generated (12 requests).",
        " training examples (0 pairs dropped).",
        "on the offline backend.",
        "  status: running\n  status: succeeded\n",
        "Fine-tuned model: ft:gpt-4o-mini-2024-07-18:org-offline:qa-bot:",
        "The fine-tune, ",
        "  set          questions   exact  answered\n  verbatim  ",
        "\n  variations  ",
        "\n  unrelated  ",
        "Question gate: ft:gpt-4o-mini-2024-07-18:org-offline:question-gate:",
        "  held out: precision ",
        "The guarded model, the same questions:",
        "  unrelated questions refused: ",
        "; verbatim questions answered: ",
        "Q: What is Star Wars?\n  fine-tune: Star Wars is",
        "  guarded (refused_question): Sorry, I can only answer questions about Fernhill Tasks.\n",
        "  guarded (passed): ",
        "HTML report, fine-tune vs guarded: ",
        "report.html\n",
    ],
    "08_train_on_your_machine.py": [
        "Built a tiny model from the sample's text: tiny-model/\n",
        "Built 24 training examples.\n",
        "Training job ftjob-local-",
        "  status: succeeded\n",
        "Fine-tuned model: local:ftjob-local-",
        "steps: 180; train loss ",
        "Q: What is Lumen Notes?\nA: Lumen Notes is a note-taking app",
        "Q: How much does Lumen Pro cost?\n"
        "A: Lumen Pro costs €5 per month, or €48 per year when billed annually.\n",
        "Q: How do I reset my password?\nA: ",
    ],
}

# Examples that train on this machine: they need the local extra, else exit 2 with one line.
LOCAL_EXAMPLES = ["08_train_on_your_machine.py"]
LOCAL_MISSING = missing()

# Examples that talk to a backend: offline by default, OpenAI with --openai and a key.
BACKEND_EXAMPLES = ["05_finetune.py", "06_ask_many.py", "07_markdown_to_guarded_bot.py"]
NO_KEY = "error: --openai needs an API key: set OPENAI_API_KEY, or drop --openai to run offline"


def run_example(
    name: str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=900 if name in LOCAL_EXAMPLES else 300,  # local ones train for real
        env={**(os.environ if env is None else env), "PYTHONIOENCODING": "utf-8"},
        check=False,
    )


def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(EXPECTED)


def test_examples_are_numbered_in_order() -> None:
    names = sorted(EXPECTED)
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.py", n) for n in names), names
    assert [int(n[:2]) for n in names] == list(range(1, len(names) + 1))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_says_what_it_does(name: str, tmp_path: Path) -> None:
    result = run_example(name, tmp_path)
    if name in LOCAL_EXAMPLES and LOCAL_MISSING:
        # without torch & co. the example says what to install, in one line, and writes nothing
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
        assert result.stderr.endswith(f"not installed: {INSTALL_HINT}\n"), result.stderr
        assert all(pkg in result.stderr for pkg in LOCAL_MISSING), result.stderr
        assert list(tmp_path.iterdir()) == []
        return
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    missing = [text for text in EXPECTED[name] if text not in result.stdout]
    assert not missing, f"{name} did not print {missing}:\n{result.stdout}"
    # examples write only to a temporary directory (or to argv[1])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_has_docstring_and_main(name: str) -> None:
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    assert source.startswith('"""'), f"{name} needs a module docstring"
    assert f"python examples/{name}" in source, f"{name}'s docstring should say how to run it"
    assert "\ndef main() -> int:\n" in source
    assert source.rstrip().endswith('if __name__ == "__main__":\n    raise SystemExit(main())')


def test_build_then_validate_share_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    built = run_example("01_build_dataset.py", tmp_path, str(out))
    assert built.returncode == 0, built.stderr
    assert {p.name for p in out.iterdir()} == {"train.jsonl", "validation.jsonl"}
    train = (out / "train.jsonl").read_bytes()

    checked = run_example("02_validate_and_price.py", tmp_path, str(out))
    assert checked.returncode == 0, checked.stderr
    assert f"Using {out / 'train.jsonl'} and {out / 'validation.jsonl'}." in checked.stdout
    assert (out / "train.jsonl").read_bytes() == train  # validated as written, not rebuilt


def test_finetune_keeps_its_files_and_journal_in_the_given_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_example("05_finetune.py", tmp_path, str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"train.jsonl", "validation.jsonl", "journal.jsonl"}
    journal = (out / "journal.jsonl").read_text(encoding="utf-8")
    assert '"op":"job","state":"created"' in journal
    assert "sk-" not in journal  # ids and hashes only, never a key


def test_guarded_bot_keeps_its_files_and_meets_the_targets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_example("07_markdown_to_guarded_bot.py", tmp_path, str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {
        "qa.csv",
        "train.jsonl",
        "variations.jsonl",
        "question-gate.json",
        "journal.jsonl",
        "report.html",
    }
    assert f"HTML report, fine-tune vs guarded: {out / 'report.html'}\n" in result.stdout
    # the targets, as the script reports them
    refused = re.search(r"unrelated questions refused: (\d+)%", result.stdout)
    answered = re.search(r"verbatim questions answered: (\d+)%", result.stdout)
    assert refused and int(refused.group(1)) >= 90, result.stdout
    assert answered and int(answered.group(1)) >= 90, result.stdout
    # the unguarded fine-tune answers every unrelated question; the guard is what refuses
    assert re.search(r"The fine-tune, .*\n(?:.*\n)*?  unrelated +\d+ +- +1\.00\n", result.stdout)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "fine-tune" in page and "guarded" in page
    gate = json.loads((out / "question-gate.json").read_text(encoding="utf-8"))
    assert gate["gate"] == "question" and gate["model"].startswith("ft:")
    # the generated pairs are what the training file holds
    with (out / "qa.csv").open(encoding="utf-8") as f:
        assert f.readline().strip()
    assert (out / "train.jsonl").read_text(encoding="utf-8").count("\n") >= 60


def test_guarded_bot_says_which_folder_is_missing(tmp_path: Path) -> None:
    result = run_example("07_markdown_to_guarded_bot.py", tmp_path, "--pages", "nowhere")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: nowhere: not a folder of Markdown pages\n"
    assert list(tmp_path.iterdir()) == []


def test_every_example_that_talks_to_a_backend_takes_openai() -> None:
    talks = {
        name
        for name in EXPECTED
        if re.search(
            r"\b(FineTuneJob|ChatModel|OfflineBackend)\b",
            (EXAMPLES / name).read_text(encoding="utf-8"),
        )
    }
    assert talks - set(LOCAL_EXAMPLES) == set(BACKEND_EXAMPLES)  # local ones need no key
    for name in BACKEND_EXAMPLES:
        source = (EXAMPLES / name).read_text(encoding="utf-8")
        docstring = source.split('"""')[1]
        assert f"python examples/{name} --openai" in docstring, f"{name}: document --openai"
        assert "OPENAI_API_KEY" in docstring, f"{name}: say --openai reads OPENAI_API_KEY"
        assert '"--openai"' in source and 'backend="openai"' in docstring


def run_in_process(
    name: str,
    cwd: Path,
    *args: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[object, str, str]:
    """Run an example as ``__main__`` in this process: its exit code, stdout and stderr.

    For runs that stop before any work (a missing key), where a new interpreter would
    only add its start-up time; what runs is the script itself, with its argv and cwd.
    """
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *args])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


@pytest.mark.parametrize("name", BACKEND_EXAMPLES)
@pytest.mark.parametrize("args", [["--openai"], ["--openai", "out"], ["out", "--openai"]])
def test_openai_without_a_key_exits_2_with_one_line(
    name: str,
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, err = run_in_process(name, tmp_path, *args, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2, err
    assert out == ""
    assert err == NO_KEY + "\n"  # one line, no traceback
    assert list(tmp_path.iterdir()) == []  # stopped before building or writing anything


@pytest.mark.parametrize("name", BACKEND_EXAMPLES)
def test_an_empty_key_counts_as_no_key(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    code, _, err = run_in_process(
        name, tmp_path, "--openai", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert err == NO_KEY + "\n"


def test_without_a_key_a_new_interpreter_stops_the_same_way(tmp_path: Path) -> None:
    # the in-process runs above, checked once as a user runs the script
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = run_example("07_markdown_to_guarded_bot.py", tmp_path, "out", "--openai", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", NO_KEY + "\n")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def openai_compatible_server() -> Iterator[str]:
    """The offline API as a local HTTP server: ``--openai`` runs its real path, no network."""
    server = serve(FakeOpenAI(), port=0, speedup=100_000.0)  # a job ends within a request
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("05_finetune.py", ["on the openai backend.", "status: succeeded", "Q (a rephrasing)"]),
        ("06_ask_many.py", ["Fine-tuning on OpenAI: job ftjob-", "ok: 50, errors: 0\n"]),
        (
            "07_markdown_to_guarded_bot.py",
            [
                "on the openai backend.",
                "Question gate: ft:",
                "guarded (refused_question): Sorry",
                "HTML report, fine-tune vs guarded: ",
            ],
        ),
    ],
)
def test_openai_flag_takes_the_openai_backend(
    name: str, says: list[str], openai_compatible_server: str, tmp_path: Path
) -> None:
    # OPENAI_BASE_URL points the openai client that OpenAIBackend builds at the local server
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_compatible_server}
    out = tmp_path / "out"
    args = ["--openai", str(out)]
    if name == "07_markdown_to_guarded_bot.py":  # the same path on two of the site's pages
        pages = tmp_path / "pages"
        pages.mkdir()
        for page in ("index.md", "pricing.md"):
            (pages / page).write_bytes(
                (EXAMPLES.parent / "tests/data/markdown_site" / page).read_bytes()
            )
        args += ["--pages", str(pages)]
    result = run_example(name, tmp_path, *args, env=env)
    assert result.returncode == 0, result.stderr
    missing = [text for text in says if text not in result.stdout]
    assert not missing, f"{name} did not print {missing}:\n{result.stdout}"
    journal = (out / "journal.jsonl").read_text(encoding="utf-8")
    assert f'"backend":"openai:{openai_compatible_server}/"' in journal
    assert "sk-test" not in journal
