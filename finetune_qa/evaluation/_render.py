"""Reports of results and comparisons: Markdown, a self-contained HTML page, an SVG chart."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from finetune_qa.evaluation._banks import _ordered_scores, _ordered_sets

if TYPE_CHECKING:
    from finetune_qa.evaluation._results import Comparison, RunSummary


@dataclass(frozen=True)
class _Row:
    id: str
    set: str
    question: str
    reference: str | None
    outputs: tuple[str | None, ...]
    errors: tuple[str | None, ...]
    scores: tuple[Mapping[str, float | None], ...]
    absent: tuple[bool, ...] = (False, False)


def _notes(runs: Sequence[RunSummary], comparison: Comparison | None) -> list[str]:
    """Lines under the title: what was dropped building the suite, how cases matched."""
    notes: list[str] = []
    drops = [run.dropped for run in runs]
    if len(runs) == 2 and drops[0] and drops[0] == drops[1]:
        notes.append(f"questions dropped while building the suite: {_counts_text(drops[0])}")
    else:
        notes += [
            f"{run.label}: questions dropped while building the suite: {_counts_text(run.dropped)}"
            for run in runs
            if run.dropped
        ]
    if comparison is not None:
        notes.append(_matched_text(comparison))
    return notes


def _counts_text(counts: Mapping[str, int]) -> str:
    """``"duplicate_question 1, over_limit 40"``."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _matched_text(c: Comparison) -> str:
    """``"140 cases matched (0 only in a, 0 only in b)"``."""
    text = (
        f"{c.matched} cases matched ({c.only_a} only in {c.a.label}, "
        f"{c.only_b} only in {c.b.label})"
    )
    if c.only_a or c.only_b:
        text += "; scores are over the matched cases"
    return text


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _fmt_delta(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"{b - a:+.2f}"


def _set_title(runs: Sequence[RunSummary], set_name: str) -> str:
    """What a set is called: the first run's name for it ("training questions"), else its key."""
    return next((t for r in runs if (t := r.set_name(set_name)) != set_name), set_name)


def _set_scorers(runs: Sequence[RunSummary], set_name: str) -> list[str]:
    names: list[str] = []
    for run in runs:
        summary = run.sets.get(set_name)
        if summary is not None:
            names.extend(k for k, v in summary.scores.items() if v is not None)
    return _ordered_scores(names)


def _score_text(scores: Mapping[str, float | None]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if v is not None)


def _md(text: str | None) -> str:
    if text is None:
        return "–"
    cell = html.escape(text, quote=False).replace("|", "\\|")
    return "<br>".join(line for line in cell.splitlines()) or " "


def _markdown(
    title: str,
    runs: Sequence[RunSummary],
    rows: Sequence[_Row],
    cases: bool,
    notes: Sequence[str] = (),
) -> str:
    out = [f"# {_md(title)}", ""]
    for run in runs:
        out.append(
            f"- **{_md(run.label)}** ({_md(run.backend)}): {run.n} questions, "
            f"{run.errors} errors, {run.seconds:.1f} s"
        )
    out += [f"- {_md(note)}" for note in notes]
    out.append("")
    sets = _ordered_sets(s for run in runs for s in run.sets)
    two = len(runs) == 2
    for name in sets:
        out += [f"## {_md(_set_title(runs, name))}", ""]
        header = ["", *(_md(r.label) for r in runs)] + (["Δ"] if two else [])
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        summaries = [r.sets.get(name) for r in runs]
        counts = [
            ("n", [float(s.n) if s else None for s in summaries]),
            ("errors", [float(s.errors) if s else None for s in summaries]),
        ]
        for label, values in counts:
            cells = [str(int(v)) if v is not None else "–" for v in values]
            out.append("| " + " | ".join([label, *cells] + ([""] if two else [])) + " |")
        for scorer in _set_scorers(runs, name):
            values = [s.scores.get(scorer) if s else None for s in summaries]
            cells = [_fmt(v) for v in values]
            extra = [_fmt_delta(values[0], values[1])] if two else []
            out.append("| " + " | ".join([scorer, *cells, *extra]) + " |")
        out.append("")
        if not cases or not any(r.set == name for r in rows):  # e.g. an "overall" summary
            continue
        heads = ["#", "Question", "Reference"]
        heads += [f"Output ({_md(r.label)})" for r in runs] if two else ["Output", "Scores"]
        out.append("| " + " | ".join(heads) + " |")
        out.append("|" + "---|" * len(heads))
        for row in (r for r in rows if r.set == name):
            cells = [row.id, _md(row.question), _md(row.reference)]
            for output, error, scores, absent in zip(
                row.outputs, row.errors, row.scores, row.absent, strict=False
            ):
                shown = _md(output) if error is None else f"**error:** {_md(error)}"
                if absent:
                    shown = "*not in this run*"
                if two:
                    shown += f"<br>*{_score_text(scores)}*" if _score_text(scores) else ""
                    cells.append(shown)
                else:
                    cells += [shown, _score_text(scores) or "–"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1d1d1f;
background:#fff;line-height:1.4}
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;
border-bottom:2px solid #e5e5ea;padding-bottom:.2rem}
.meta{color:#555;margin:.2rem 0}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d2d2d7;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#f2f2f7}
table.summary td.num{text-align:right;font-variant-numeric:tabular-nums}
table.cases{width:100%;table-layout:fixed}
table.cases td{word-wrap:break-word;white-space:pre-wrap}
.err{color:#b00020;font-weight:600}.scores{color:#555;font-size:.8rem;display:block;margin-top:.3rem}
.up{color:#1b7f3b}.down{color:#b00020}
.legend span{display:inline-block;margin-right:1rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""

_COLORS = ("#4c78a8", "#f58518")


def _svg_chart(runs: Sequence[RunSummary]) -> str:
    """Grouped bars: one group per set and scorer, one bar per run, scale 0-1."""
    groups: list[tuple[str, str, str, list[float | None]]] = []
    for name in _ordered_sets(s for run in runs for s in run.sets):
        for scorer in _set_scorers(runs, name):
            values = [
                run.sets[name].scores.get(scorer) if name in run.sets else None for run in runs
            ]
            groups.append((name, _set_title(runs, name), scorer, values))
    if not groups:
        return ""
    bar, gap, height, top, bottom, left = 14, 14, 160, 16, 64, 34
    group_w = bar * len(runs) + gap
    width = left + group_w * len(groups) + gap
    total_h = top + height + bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
        f'viewBox="0 0 {width} {total_h}" role="img" aria-label="Mean scores per set">',
        f'<rect x="0" y="0" width="{width}" height="{total_h}" fill="#ffffff"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + height * (1 - tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#e5e5ea"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#555">{tick:g}</text>'
        )
    for g, (set_name, title, scorer, values) in enumerate(groups):
        x0 = left + gap + g * group_w
        for k, value in enumerate(values):
            if value is None:
                continue
            h = max(1.0, height * value)
            parts.append(
                f'<rect x="{x0 + k * bar}" y="{top + height - h:.1f}" width="{bar - 2}" '
                f'height="{h:.1f}" fill="{_COLORS[k % len(_COLORS)]}">'
                f"<title>{html.escape(runs[k].label)} {html.escape(set_name)} "
                f"{html.escape(scorer)}: {value:.2f}</title></rect>"
            )
        cx = x0 + bar * len(values) / 2
        ly = top + height + 10
        parts.append(
            f'<text x="{cx:.1f}" y="{ly}" font-size="10" text-anchor="end" fill="#333" '
            f'transform="rotate(-45 {cx:.1f} {ly})">{html.escape(title[:12])} '
            f"{html.escape(scorer)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _html(
    title: str, runs: Sequence[RunSummary], rows: Sequence[_Row], notes: Sequence[str] = ()
) -> str:
    e = html.escape
    two = len(runs) == 2
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for k, run in enumerate(runs):
        out.append(
            f'<p class="meta"><span class="swatch" style="background:{_COLORS[k]}"></span>'
            f"<strong>{e(run.label)}</strong> ({e(run.model)}, backend {e(run.backend)}): "
            f"{run.n} questions, {run.errors} errors, {run.seconds:.1f} s</p>"
        )
    out += [f'<p class="meta note">{e(note)}</p>' for note in notes]
    out.append(_svg_chart(runs))
    sets = _ordered_sets(s for run in runs for s in run.sets)
    for name in sets:
        summaries = [run.sets.get(name) for run in runs]
        title = _set_title(runs, name)
        out.append(f'<h2 id="set-{e(name)}">{e(title)}</h2>')
        head = "".join(f"<th>{e(run.label)}</th>" for run in runs) + ("<th>Δ</th>" if two else "")
        out.append(
            f'<table class="summary" data-set="{e(name)}"><thead><tr><th>{e(title)}</th>{head}'
            "</tr></thead><tbody>"
        )
        for label, attr in (("n", "n"), ("errors", "errors")):
            cells = "".join(
                f'<td class="num">{getattr(s, attr) if s else "–"}</td>' for s in summaries
            )
            out.append(f"<tr><th>{label}</th>{cells}{'<td></td>' if two else ''}</tr>")
        for scorer in _set_scorers(runs, name):
            values = [s.scores.get(scorer) if s else None for s in summaries]
            cells = "".join(f'<td class="num">{_fmt(v)}</td>' for v in values)
            if two:
                d = _fmt_delta(values[0], values[1])
                cls = "up" if d.startswith("+") and d != "+0.00" else "down" if d[:1] == "-" else ""
                cells += f'<td class="num {cls}">{d}</td>'
            out.append(f"<tr><th>{e(scorer)}</th>{cells}</tr>")
        out.append("</tbody></table>")
        if not any(r.set == name for r in rows):  # e.g. an "overall" summary: no cases of its own
            continue
        outputs_head = (
            "".join(f"<th>Output: {e(run.label)}</th>" for run in runs)
            if two
            else "<th>Output</th>"
        )
        out.append(
            f'<table class="cases" data-set="{e(name)}"><thead><tr><th style="width:7rem">#</th>'
            f"<th>Question</th><th>Reference</th>{outputs_head}</tr></thead><tbody>"
        )
        for row in (r for r in rows if r.set == name):
            tds = [
                f"<td>{e(row.id)}</td>",
                f"<td>{e(row.question)}</td>",
                f"<td>{e(row.reference) if row.reference is not None else '–'}</td>",
            ]
            for output, error, scores, absent in zip(
                row.outputs, row.errors, row.scores, row.absent, strict=False
            ):
                if absent:
                    body = "<em>not in this run</em>"
                elif error is not None:
                    body = f'<span class="err">error: {e(error)}</span>'
                else:
                    body = e(output) if output is not None else "–"
                score_text = _score_text(scores)
                if score_text:
                    body += f'<span class="scores">{e(score_text)}</span>'
                tds.append(f"<td>{body}</td>")
            out.append(f'<tr class="case" id="{e(row.id)}">{"".join(tds)}</tr>')
        out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
