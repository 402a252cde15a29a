from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from finetune_qa import DatasetBuilder, QAPair
from finetune_qa import exceptions as exc
from finetune_qa.backends import OfflineBackend
from finetune_qa.jobs import FineTuneJob, MetricPoint
from finetune_qa.plots import loss_curve, metrics_table, plot_metrics

SYS = "You are a factual chatbot that answers questions about Acme."
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def five() -> list[MetricPoint]:
    """Decreasing losses; validation on steps 2, 4 and 5 only, as a real job may report."""
    rows = [
        (1, 2.5, 0.4, None, None),
        (2, 1.8, 0.5, 2.0, 0.45),
        (3, 1.2, 0.6, None, None),
        (4, 0.8, 0.7, 1.1, 0.62),
        (5, 0.5, 0.8, 0.9, 0.7),
    ]
    return [
        MetricPoint(
            step=s, train_loss=tl, train_accuracy=ta, valid_loss=vl, valid_mean_token_accuracy=va
        )
        for s, tl, ta, vl, va in rows
    ]


def test_metrics_table_exact() -> None:
    assert metrics_table(five()) == "\n".join(
        [
            "step  train loss  train acc  valid loss  valid acc",
            "----  ----------  ---------  ----------  ---------",
            "   1      2.5000     0.4000           -          -",
            "   2      1.8000     0.5000      2.0000     0.4500",
            "   3      1.2000     0.6000           -          -",
            "   4      0.8000     0.7000      1.1000     0.6200",
            "   5      0.5000     0.8000      0.9000     0.7000",
        ]
    )


LOSS_CURVE = """\
2.5000 ┤••
       │  •••o
       │     •••
       │        ••••  o
       │            ••••   o
0.5000 ┤                ••••
       └────────────────────
        1       step       5
        • train loss  o valid loss"""


def test_loss_curve_exact() -> None:
    chart = loss_curve(five(), width=20, height=6)
    assert chart == LOSS_CURVE
    lines = chart.splitlines()
    # highest loss top-left, lowest bottom-right, both on labelled rows
    assert lines[0].startswith("2.5000 ┤•")
    assert lines[5].startswith("0.5000 ┤") and lines[5].endswith("•")
    assert lines[5].index("•") > lines[0].index("•")
    # input order does not matter
    assert loss_curve(list(reversed(five())), width=20, height=6) == chart


def test_loss_curve_ascii_is_the_same_chart_in_ascii() -> None:
    chart = loss_curve(five(), width=20, height=6, ascii=True)
    assert chart.isascii()
    expected = LOSS_CURVE
    for fancy, plain in {"•": "*", "┤": "+", "│": "|", "└": "+", "─": "-"}.items():
        expected = expected.replace(fancy, plain)
    assert chart == expected


def test_loss_curve_defaults_fill_the_plot_area() -> None:
    lines = loss_curve(five()).splitlines()
    assert len(lines) == 12 + 3
    plot = [line[len("2.5000 ┤") :] for line in lines[:12]]
    assert max(len(row) for row in plot) == 60
    assert lines[12] == "       └" + "─" * 60
    assert lines[13].strip().startswith("1") and lines[13].endswith("5")


def test_loss_curve_train_only_and_flat_series() -> None:
    train_only = [MetricPoint(step=s, train_loss=1.0 / s) for s in range(1, 4)]
    assert loss_curve(train_only, width=6, height=3).splitlines()[-1].strip() == "• train loss"
    flat = [MetricPoint(step=3, valid_loss=1.0), MetricPoint(step=9, valid_loss=1.0)]
    assert loss_curve(flat, width=8, height=3) == "\n".join(
        [
            "       │",
            "1.0000 ┤o      o",
            "       │",
            "       └────────",
            "        3 step 9",
            "        o valid loss",
        ]
    )


def test_thinning_keeps_first_and_last_and_at_most_max_rows() -> None:
    points = [MetricPoint(step=s, train_loss=10.0 / s) for s in range(1, 91)]
    for max_rows in (2, 3, 7, 20, 89):
        lines = metrics_table(points, max_rows=max_rows).splitlines()
        rows = lines[2:-1]
        assert lines[-1] == f"({max_rows} of 90 steps shown)"
        steps = [int(r.split()[0]) for r in rows]
        assert len(steps) == max_rows
        assert steps[0] == 1 and steps[-1] == 90
        assert steps == sorted(set(steps))
        gaps = [b - a for a, b in itertools.pairwise(steps)]
        assert max(gaps) - min(gaps) <= 1, "evenly spread"
    # no thinning (and no footnote) when everything fits
    assert len(metrics_table(points, max_rows=90).splitlines()) == 2 + 90
    assert len(metrics_table(points[:5]).splitlines()) == 2 + 5
    with pytest.raises(exc.UsageError, match="max_rows must be at least 2"):
        metrics_table(points, max_rows=1)


def test_empty_metrics_are_a_usage_error(tmp_path: Path) -> None:
    message = "no metrics yet: the job has not reported a training step"
    with pytest.raises(exc.UsageError, match=message):
        loss_curve([])
    with pytest.raises(exc.UsageError, match=message):
        metrics_table([])
    with pytest.raises(exc.UsageError, match=message):
        plot_metrics([], tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()
    with pytest.raises(exc.UsageError, match="no loss values"):
        loss_curve([MetricPoint(step=1, train_accuracy=0.5)])
    with pytest.raises(exc.UsageError, match="at least 2"):
        loss_curve(five(), width=1)


@pytest.fixture(scope="module")
def real_metrics(tmp_path_factory: pytest.TempPathFactory) -> list[MetricPoint]:
    out = tmp_path_factory.mktemp("job")
    pairs = [
        QAPair(
            question=f"What does plan number {i} include?", answer=f"Plan {i} includes {i} anvils."
        )
        for i in range(40)
    ]
    DatasetBuilder(system_prompt=SYS).add_pairs(pairs).split(0.25).build(
        out / "train.jsonl", validation_output=out / "valid.jsonl"
    )
    job = FineTuneJob.create(
        out / "train.jsonl",
        validation_file=out / "valid.jsonl",
        model="gpt-4o-mini",
        backend=OfflineBackend(max_retries=0),
        journal=out / "j.jsonl",
    )
    assert job.wait().status == "succeeded"
    metrics = job.metrics()
    assert len(metrics) > 10
    assert all(
        m.valid_loss is not None and m.valid_mean_token_accuracy is not None for m in metrics
    )
    return metrics


def test_real_job_metrics_as_text(real_metrics: list[MetricPoint]) -> None:
    table = metrics_table(real_metrics).splitlines()
    assert table[2].split()[0] == "1" and table[-2].split()[0] == str(real_metrics[-1].step)
    chart = loss_curve(real_metrics)
    assert chart.splitlines()[-1].strip() == "• train loss  o valid loss"
    assert "•" in chart and "o" in chart


def test_plot_metrics_writes_a_real_two_panel_png(
    real_metrics: list[MetricPoint], tmp_path: Path
) -> None:
    import matplotlib  # noqa: F401 - a dev dependency: the PNG must really be drawn
    import numpy as np
    from matplotlib.image import imread

    target = tmp_path / "plots" / "loss.png"  # the directory is created
    result = plot_metrics(real_metrics, target, title="acme")
    assert result == target
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
    assert sorted(p.name for p in target.parent.iterdir()) == ["loss.png"], "no temporary file left"

    image = imread(target)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    rgb = image[:, :, :3]
    height, width = rgb.shape[:2]
    assert width > height > 200
    non_white = (rgb < 0.95).any(axis=2)
    # saturated pixels: the plotted lines, not the black and grey axes, grid and text
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 0.3
    left, right = slice(0, width // 2), slice(width // 2, width)
    for panel in (left, right):
        assert non_white[:, panel].sum() > 2_000
        assert coloured[:, panel].sum() > 500, "a plotted line in each panel"
    colours = np.unique((rgb * 255).round().astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 3

    # writing again replaces the file in place
    plot_metrics(real_metrics[:5], target)
    assert target.read_bytes().startswith(PNG_SIGNATURE) and target.read_bytes() != data


def test_plot_metrics_without_validation_or_accuracy(tmp_path: Path) -> None:
    import matplotlib  # noqa: F401 - a dev dependency: the PNG must really be drawn

    points = [MetricPoint(step=s, train_loss=1.0 / s) for s in range(1, 6)]
    out = plot_metrics(points, str(tmp_path / "train-only.png"))
    assert out == tmp_path / "train-only.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_metrics_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(exc.UsageError, match=r"ending in \.png"):
        plot_metrics(five(), tmp_path / "loss.svg")


def test_missing_matplotlib_is_a_config_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(exc.ConfigError) as info:
        plot_metrics(five(), tmp_path / "loss.png")
    assert "pip install 'finetune-qa[plot]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
    assert list(tmp_path.iterdir()) == []
