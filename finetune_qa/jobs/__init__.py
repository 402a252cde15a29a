"""Placeholder, replaced in the next commit."""

from finetune_qa.jobs._job import *  # noqa: F403
