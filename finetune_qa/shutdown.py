"""The shutdown inventory: every fine-tuned model the account owns, with the days it has left.

Before a provider retires its fine-tuning (OpenAI: no new jobs from 2027-01-06, gpt-4o,
4o-mini, 4.1 and 4.1-mini fine-tunes shut down on 2027-01-14), list what you would lose:
:func:`inventory` reads the jobs API (the ``fine_tuned_model`` of every succeeded job)
and, where the backend has one (the optional
:class:`~finetune_qa.backends.base.ListsModels` capability), the models API, and dates
each model with the catalogue's end dates for its base model.

Days are counted from ``today``: the date given, else the offline backend's virtual
clock (as :meth:`FineTuneJob.create <finetune_qa.jobs.FineTuneJob.create>` judges it),
else :func:`finetune_qa.config.today` (``$FINETUNE_QA_TODAY`` or the system's date).

Example:
    >>> import datetime as dt
    >>> from finetune_qa import inventory
    >>> inventory("offline", today=dt.date(2027, 1, 1))
    []
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from finetune_qa.backends import Backend, OfflineBackend, get_backend
from finetune_qa.backends.base import ListsModels, ServedModel
from finetune_qa.catalog import ModelCatalog, base_model_name, get_model_info
from finetune_qa.config import today as config_today
from finetune_qa.exceptions import UnknownModelError, UsageError

__all__ = ["DEFAULT_INVENTORY_JOBS", "FineTunedModel", "inventory"]

DEFAULT_INVENTORY_JOBS = 100
"""How many of the newest jobs :func:`inventory` reads (one page of the jobs API)."""


class FineTunedModel(BaseModel):
    """One fine-tuned model of the account, with its base model's end dates and days left."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The fine-tuned model's name, to query it by.")
    base_model: str = Field(description="The model it was trained from.")
    backend: str = Field(description="The backend's name.")
    created_at: dt.datetime | None = Field(
        default=None, description="When the model came to be (its job's end), UTC."
    )
    job_id: str | None = Field(
        default=None, description="The job that made it (None: found in the models API only)."
    )
    served: bool | None = Field(
        default=None,
        description="Whether the models API lists it (False: deleted; None: no models API).",
    )
    fine_tuning_ends: dt.date | None = Field(
        default=None, description="Last day new fine-tuning jobs on the base model can start."
    )
    shutdown_date: dt.date | None = Field(
        default=None, description="Day the base model and its fine-tunes stop serving."
    )
    today: dt.date = Field(description="The date the days are counted from.")
    days_to_fine_tuning_end: int | None = Field(
        default=None, description="Days from today to fine_tuning_ends (negative: ended)."
    )
    days_to_shutdown: int | None = Field(
        default=None, description="Days from today to shutdown_date (negative: shut down)."
    )
    fine_tuning_ended: bool = Field(
        default=False, description="True once new jobs on the base model can no longer start."
    )
    shut_down: bool = Field(default=False, description="True once the model stopped serving.")

    @property
    def status(self) -> str:
        """One phrase: ``shut down``, ``deleted``, ``no new jobs``, or ``serving``."""
        if self.shut_down:
            return "shut down"
        if self.served is False:
            return "deleted"
        if self.fine_tuning_ended:
            return "no new jobs"
        return "serving"


def inventory(
    backend: str | Backend = "openai",
    *,
    today: dt.date | None = None,
    catalog: ModelCatalog | None = None,
    limit: int = DEFAULT_INVENTORY_JOBS,
) -> list[FineTunedModel]:
    """Every fine-tuned model the account owns, soonest shutdown first.

    A model comes from a succeeded job (its ``fine_tuned_model``) or, on a backend with a
    models API (:class:`~finetune_qa.backends.base.ListsModels`), from that list; a job's
    model the list no longer has is kept with ``served=False`` (deleted). End dates come
    from the catalogue entry of the base model, else the models API's ``shutdown_date``;
    a base model the catalogue does not know has none.

    Args:
        backend: a backend name or instance.
        today: the date to count days from (default: the offline backend's virtual
            clock, else :func:`finetune_qa.config.today`).
        catalog: the model catalogue (default: the packaged one).
        limit: how many of the newest jobs to read.

    Raises:
        UsageError: ``limit`` is not a whole number >= 1.
        BackendError: the jobs or models API failed.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a whole number >= 1, got {limit!r}")
    be = get_backend(backend)
    day = today if today is not None else _today_of(be)
    found: dict[str, dict[str, object]] = {}
    for job in be.list_jobs(limit=limit):
        if job.status != "succeeded" or not job.fine_tuned_model:
            continue
        if job.fine_tuned_model in found:  # newest first: keep the newest job's record
            continue
        stamp = job.finished_at or job.created_at
        found[job.fine_tuned_model] = {
            "base_model": job.model,
            "job_id": job.id,
            "created_at": _utc(stamp) if stamp else None,
        }
    served: dict[str, ServedModel] | None = None
    if isinstance(be, ListsModels):
        served = {m.id: m for m in be.list_models() if m.fine_tuned}
        for m in served.values():
            found.setdefault(
                m.id,
                {
                    "base_model": base_model_name(m.id),
                    "job_id": None,
                    "created_at": _utc(m.created_at) if m.created_at else None,
                },
            )
    items = [_dated(model, info, be.name, served, day, catalog) for model, info in found.items()]
    return sorted(items, key=_soonest_first)


def _dated(
    model: str,
    info: dict[str, object],
    backend: str,
    served: dict[str, ServedModel] | None,
    day: dt.date,
    catalog: ModelCatalog | None,
) -> FineTunedModel:
    base = str(info["base_model"])
    listed = served.get(model) if served is not None else None
    ft_end: dt.date | None = None
    shutdown: dt.date | None = listed.shutdown_date if listed is not None else None
    try:
        known = get_model_info(base, catalog=catalog)
    except UnknownModelError:
        pass
    else:
        ft_end = known.fine_tuning_ends
        shutdown = known.shutdown_date or shutdown
    days_ft = (ft_end - day).days if ft_end is not None else None
    days_off = (shutdown - day).days if shutdown is not None else None
    return FineTunedModel.model_validate(
        {
            **info,
            "model": model,
            "backend": backend,
            "served": None if served is None else model in served,
            "fine_tuning_ends": ft_end,
            "shutdown_date": shutdown,
            "today": day,
            "days_to_fine_tuning_end": days_ft,
            "days_to_shutdown": days_off,
            "fine_tuning_ended": days_ft is not None and days_ft < 0,
            "shut_down": days_off is not None and days_off <= 0,
        }
    )


def _soonest_first(item: FineTunedModel) -> tuple[dt.date, str]:
    return (item.shutdown_date or dt.date.max, item.model)


def _utc(stamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc)


def _today_of(backend: Backend) -> dt.date:
    """The offline backend's virtual date (its jobs are dated by it), else config's today."""
    if isinstance(backend, OfflineBackend):
        return _utc(int(backend.fake.clock.now())).date()
    return config_today()
