"""Training metrics as a text table, a terminal chart, or a PNG.

A job's :meth:`~finetune_qa.jobs.FineTuneJob.metrics` is a list of
:class:`~finetune_qa.jobs.MetricPoint`; these functions show it. The table and the
terminal chart are plain text and need nothing extra; :func:`plot_metrics` draws a
two-panel PNG (loss, token accuracy) with matplotlib, an optional dependency
(``pip install 'finetune-qa[plot]'``).

Example:
    >>> from finetune_qa.jobs import MetricPoint
    >>> from finetune_qa.plots import loss_curve, metrics_table
    >>> points = [
    ...     MetricPoint(step=1, train_loss=2.0, train_accuracy=0.5),
    ...     MetricPoint(step=2, train_loss=1.0, train_accuracy=0.6, valid_loss=1.2),
    ... ]
    >>> print(metrics_table(points))
    step  train loss  train acc  valid loss  valid acc
    ----  ----------  ---------  ----------  ---------
       1      2.0000     0.5000           -          -
       2      1.0000     0.6000      1.2000          -
    >>> print(loss_curve(points, width=12, height=4, ascii=True))
    2.0000 +**
           |  ****
           |      **** o
    1.0000 +          **
           +------------
            1   step   2
            * train loss  o valid loss
    >>> plot_metrics(job.metrics(), "loss.png", title="acme")  # doctest: +SKIP
    PosixPath('loss.png')
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from finetune_qa._fs import atomic_write
from finetune_qa.exceptions import ConfigError, UsageError
from finetune_qa.jobs import MetricPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["loss_curve", "metrics_table", "plot_metrics"]

DEFAULT_MAX_ROWS = 20
"""Rows :func:`metrics_table` shows at most."""
DEFAULT_WIDTH = 60
"""Columns of the plot area of :func:`loss_curve`."""
DEFAULT_HEIGHT = 12
"""Rows of the plot area of :func:`loss_curve`."""
INSTALL_HINT = "pip install 'finetune-qa[plot]'"
"""How to get the optional plotting dependency."""

_NO_METRICS = (
    "no metrics yet: the job has not reported a training step; "
    "wait for the job to run (job.wait()) and call job.metrics() again"
)
_HEADERS = ("step", "train loss", "train acc", "valid loss", "valid acc")


def _sorted(points: Sequence[MetricPoint]) -> list[MetricPoint]:
    if not points:
        raise UsageError(_NO_METRICS)
    return sorted(points, key=lambda p: p.step)


def _thin(n: int, max_rows: int) -> list[int]:
    """``max_rows`` evenly spread indices of ``range(n)``, first and last included."""
    if n <= max_rows:
        return list(range(n))
    gaps = max_rows - 1
    # spacing is above 1, so rounding to the nearest index never repeats one
    return [(i * (n - 1) + gaps // 2) // gaps for i in range(max_rows)]


def _nearest(x: float) -> int:
    """``x`` rounded half up (``round`` rounds half to even, which looks uneven on a grid)."""
    return math.floor(x + 0.5 + 1e-9)  # 1e-9: 0.49999999999999994 is a half, too


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def metrics_table(points: Sequence[MetricPoint], *, max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """A plain-text table of the metrics, one row per step, thinned to ``max_rows``.

    Numbers have 4 decimals; a metric the step did not report shows as ``-``. With more
    steps than ``max_rows``, evenly spaced steps are shown (always the first and the
    last) and a last line says how many.

    Args:
        points: the metrics, e.g. ``job.metrics()``; sorted by step here.
        max_rows: most data rows to show (at least 2).

    Returns:
        The table, lines joined by newlines, without a trailing newline.

    Raises:
        UsageError: ``points`` is empty, or ``max_rows`` is below 2.
    """
    if max_rows < 2:
        raise UsageError(f"max_rows must be at least 2 (first and last step), got {max_rows}")
    ordered = _sorted(points)
    keep = _thin(len(ordered), max_rows)
    rows = [
        (
            str(p.step),
            _num(p.train_loss),
            _num(p.train_accuracy),
            _num(p.valid_loss),
            _num(p.valid_mean_token_accuracy),
        )
        for p in (ordered[i] for i in keep)
    ]
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(_HEADERS)]
    lines = [
        "  ".join(h.rjust(w) for h, w in zip(_HEADERS, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    if len(keep) < len(ordered):
        lines.append(f"({len(keep)} of {len(ordered)} steps shown)")
    return "\n".join(lines)


def _series(points: Sequence[MetricPoint], field: str) -> list[tuple[int, float]]:
    out = []
    for p in points:
        value = getattr(p, field)
        if value is not None and math.isfinite(value):
            out.append((p.step, float(value)))
    return out


def _columns(series: list[tuple[int, float]], x_of: dict[int, int]) -> dict[int, float]:
    """The mean value of the points that land in each column."""
    sums: dict[int, list[float]] = {}
    for step, value in series:
        sums.setdefault(x_of[step], []).append(value)
    return {x: sum(vs) / len(vs) for x, vs in sums.items()}


def _connect(cols: dict[int, float]) -> dict[int, float]:
    """Fill the columns between reported ones by linear interpolation (a line, not dots)."""
    xs = sorted(cols)
    out = dict(cols)
    for a, b in itertools.pairwise(xs):
        for x in range(a + 1, b):
            out[x] = cols[a] + (cols[b] - cols[a]) * (x - a) / (b - a)
    return out


def loss_curve(
    points: Sequence[MetricPoint],
    *,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    ascii: bool = False,
) -> str:
    """A terminal line chart of the training loss (and validation loss) over the steps.

    The training loss is a connected line of ``•`` (``*`` with ``ascii=True``); the
    validation loss, where reported, is marked ``o`` at its steps and drawn over the
    training line. The y axis is labelled with the highest and lowest loss, the x axis
    with the first and last step, and a legend closes the chart. The output depends
    only on the arguments.

    Args:
        points: the metrics, e.g. ``job.metrics()``; sorted by step here.
        width: columns of the plot area (at least 2).
        height: rows of the plot area (at least 2).
        ascii: draw with ASCII characters only.

    Returns:
        The chart, lines joined by newlines, without trailing spaces or newline.

    Raises:
        UsageError: ``points`` is empty or holds no loss, or ``width``/``height`` is below 2.
    """
    if width < 2 or height < 2:
        raise UsageError(f"width and height must be at least 2, got {width}x{height}")
    ordered = _sorted(points)
    train = _series(ordered, "train_loss")
    valid = _series(ordered, "valid_loss")
    if not train and not valid:
        raise UsageError(
            f"no loss values in the {len(ordered)} metric points; "
            "the job has not reported a training loss yet"
        )
    if ascii:
        t_mark, v_mark, vbar, tick, corner, hbar = "*", "o", "|", "+", "+", "-"
    else:
        t_mark, v_mark, vbar, tick, corner, hbar = "•", "o", "│", "┤", "└", "─"

    first, last = ordered[0].step, ordered[-1].step
    span = last - first
    x_of = {
        p.step: (0 if span == 0 else _nearest((p.step - first) * (width - 1) / span))
        for p in ordered
    }
    values = [v for _, v in train + valid]
    lo, hi = min(values), max(values)

    def row_of(value: float) -> int:  # 0 is the top row
        if hi == lo:
            return (height - 1) // 2
        return height - 1 - _nearest((value - lo) * (height - 1) / (hi - lo))

    grid = [[" "] * width for _ in range(height)]
    for x, value in _connect(_columns(train, x_of)).items():
        grid[row_of(value)][x] = t_mark
    for x, value in _columns(valid, x_of).items():
        grid[row_of(value)][x] = v_mark

    labels = {row_of(hi): f"{hi:.4f}", row_of(lo): f"{lo:.4f}"}  # one label if flat
    pad = max(len(text) for text in labels.values())
    lines = []
    for r, cells in enumerate(grid):
        axis = tick if r in labels else vbar
        lines.append(f"{labels.get(r, '').rjust(pad)} {axis}{''.join(cells)}")
    lines.append(" " * pad + " " + corner + hbar * width)
    left, right = str(first), str(last)
    if span == 0:
        steps = left
    else:
        gap = max(1, width - len(left) - len(right))
        middle = "step".center(gap) if gap >= len("step") + 2 else " " * gap
        steps = left + middle + right
    lines.append(" " * (pad + 2) + steps)
    legend = []
    if train:
        legend.append(f"{t_mark} train loss")
    if valid:
        legend.append(f"{v_mark} valid loss")
    lines.append(" " * (pad + 2) + "  ".join(legend))
    return "\n".join(line.rstrip() for line in lines)


def _draw(
    ax: Axes,
    points: Sequence[MetricPoint],
    fields: Sequence[tuple[str, str]],
    *,
    title: str,
    ylabel: str,
) -> None:
    drawn = 0
    for field, label in fields:
        series = _series(points, field)
        if not series:
            continue
        steps = [step for step, _ in series]
        values = [value for _, value in series]
        # a marker per point helps with a few points and clutters with hundreds
        marker = "o" if len(series) <= 40 else None
        ax.plot(steps, values, label=label, marker=marker, markersize=3, linewidth=1.5)
        drawn += 1
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not reported", ha="center", va="center", transform=ax.transAxes)


def plot_metrics(
    points: Sequence[MetricPoint],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Write a PNG with two panels: loss and token accuracy over the steps.

    The left panel shows the training loss and, when reported, the validation loss;
    the right one the training token accuracy and the validation mean token accuracy.
    The figure is drawn with matplotlib's Agg canvas directly (no pyplot, no change to
    matplotlib's global state) and written atomically: to a temporary file beside
    ``path``, then moved into place.

    Args:
        points: the metrics, e.g. ``job.metrics()``; sorted by step here.
        path: the PNG to write (its directory is created if needed).
        title: a title over both panels.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        UsageError: ``points`` is empty, or ``path`` does not end in ``.png``.
        ConfigError: matplotlib is not installed.
        InputFileError: ``path`` cannot be written.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"plot_metrics writes PNG images; give a path ending in .png, not {out}")
    ordered = _sorted(points)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(f"plotting needs matplotlib: {INSTALL_HINT}") from exc

    fig = Figure(figsize=(11, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    _draw(
        loss_ax,
        ordered,
        [("train_loss", "train loss"), ("valid_loss", "validation loss")],
        title="Loss",
        ylabel="loss",
    )
    _draw(
        acc_ax,
        ordered,
        [
            ("train_accuracy", "train token accuracy"),
            ("valid_mean_token_accuracy", "validation mean token accuracy"),
        ],
        title="Token accuracy",
        ylabel="token accuracy",
    )
    if title:
        fig.suptitle(title)

    atomic_write(
        out,
        lambda f: fig.savefig(f, format="png"),
        problem="cannot write the plot",
        hint="choose a writable directory and a file name ending in .png",
    )
    return out
