"""Griffe extension for the docs build: show reST cross-reference roles as code.

The package's docstrings use Sphinx roles (``:class:`ModelInfo```, ``:meth:`~QASource.pairs```).
mkdocstrings renders docstrings as Markdown, where a role would appear literally, so this
extension rewrites each one to a code span (``ModelInfo``, ``pairs``) when the package is
loaded. It changes only what the API reference displays, never the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|attr|mod|exc|obj):`(~?)([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class RstRoles(griffe.Extension):
    """Rewrite ``:role:`target``` to ```target``` in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the roles in ``obj``'s docstring, once the package is fully loaded."""
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_as_code, obj.docstring.value)
