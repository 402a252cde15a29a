"""The shutdown inventory, offline: every fine-tune with its end dates and days left."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

import pytest

from finetune_qa import (
    Backend,
    DatasetBuilder,
    FineTuneJob,
    ListsModels,
    OfflineBackend,
    UsageError,
    inventory,
    sample_csv,
)

DAY = 86400.0


def _train(backend: OfflineBackend, tmp_path: Path, model: str, suffix: str) -> str:
    train = tmp_path / "train.jsonl"
    if not train.exists():
        DatasetBuilder().add_source(sample_csv()).build(train)
    job = FineTuneJob.create(train, model=model, backend=backend, suffix=suffix)
    job.wait()
    assert job.fine_tuned_model is not None
    return job.fine_tuned_model


@pytest.fixture
def backend() -> OfflineBackend:
    return OfflineBackend()


# ------------------------------------------------------------------------------- inventory


def test_offline_backend_lists_its_models(backend: OfflineBackend, tmp_path: Path) -> None:
    ft = _train(backend, tmp_path, "gpt-4o-mini", "inv")
    assert isinstance(backend, ListsModels)
    models = {m.id: m for m in backend.list_models()}
    assert models[ft].fine_tuned and models[ft].shutdown_date == dt.date(2027, 1, 14)
    assert not models["gpt-4o-mini"].fine_tuned


def test_inventory_lists_offline_fine_tunes_with_dates(
    backend: OfflineBackend, tmp_path: Path
) -> None:
    mini = _train(backend, tmp_path, "gpt-4o-mini", "mini")
    nano = _train(backend, tmp_path, "gpt-4.1-nano", "nano")
    items = inventory(backend)
    assert [i.model for i in items] == [nano, mini]  # the soonest shutdown first
    by = {i.model: i for i in items}
    # the offline backend counts from its own clock: 2026-01-01 at the start
    assert by[mini].today == dt.date(2026, 1, 1)
    assert by[mini].base_model == "gpt-4o-mini-2024-07-18"
    assert by[mini].fine_tuning_ends == dt.date(2027, 1, 6)
    assert by[mini].shutdown_date == dt.date(2027, 1, 14)
    assert (by[mini].days_to_fine_tuning_end, by[mini].days_to_shutdown) == (370, 378)
    assert by[mini].created_at is not None and by[mini].created_at.date() == dt.date(2026, 1, 1)
    assert by[mini].job_id and by[mini].served is True and by[mini].status == "serving"
    assert by[nano].shutdown_date == dt.date(2026, 10, 23)
    # round-trips as one JSON line
    assert type(by[mini]).model_validate_json(by[mini].model_dump_json()) == by[mini]

    # twelve days before the shutdown, new jobs have ended; a deleted model is marked
    backend.fake.clock.advance((dt.date(2027, 1, 2) - dt.date(2026, 1, 1)).days * DAY)
    backend.client.models.delete(nano)
    by = {i.model: i for i in inventory(backend)}
    assert by[mini].days_to_shutdown == 12 and not by[mini].shut_down
    assert by[mini].days_to_fine_tuning_end == 4 and not by[mini].fine_tuning_ended
    assert by[nano].shut_down and by[nano].days_to_shutdown == -71
    assert by[nano].served is False
    later = {i.model: i for i in inventory(backend, today=dt.date(2027, 1, 10))}[mini]
    assert later.fine_tuning_ended and not later.shut_down and later.status == "no new jobs"
    gone = {i.model: i for i in inventory(backend, today=dt.date(2027, 1, 14))}[mini]
    assert gone.shut_down and gone.status == "shut down"


class _JobsOnly:
    """A backend with a jobs API and no models API."""

    name = "jobs-only"

    def __init__(self, inner: OfflineBackend) -> None:
        self.inner = inner

    def list_jobs(self, **kwargs: Any) -> Any:
        return self.inner.list_jobs(**kwargs)


def test_inventory_without_a_models_api_reads_jobs(
    backend: OfflineBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ft = _train(backend, tmp_path, "gpt-4.1-mini", "jobs")
    monkeypatch.setenv("FINETUNE_QA_TODAY", "2027-01-01")
    jobs_only = cast(Backend, _JobsOnly(backend))
    assert not isinstance(jobs_only, ListsModels)
    (item,) = inventory(jobs_only)
    assert item.model == ft and item.backend == "jobs-only" and item.served is None
    assert item.today == dt.date(2027, 1, 1) and item.days_to_shutdown == 13
    with pytest.raises(UsageError):
        inventory(jobs_only, limit=0)
