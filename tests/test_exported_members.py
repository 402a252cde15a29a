import inspect

import finetune_qa


def test_all_is_sorted_and_complete() -> None:
    exported = finetune_qa.__all__
    # ruff's RUF022 order: SCREAMING_CASE constants first, then the rest as plain sorted()
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    # submodules are importable but not part of the flat namespace
    public = {
        n
        for n in dir(finetune_qa)
        if not n.startswith("_") and not inspect.ismodule(getattr(finetune_qa, n))
    }
    assert public | {"__version__"} == set(exported)


def test_every_export_has_a_docstring() -> None:
    for name in finetune_qa.__all__:
        obj = getattr(finetune_qa, name)
        if name in {"__version__", "Role"}:
            continue
        assert obj.__doc__ and obj.__doc__.strip(), name
