"""One hierarchy of errors for the service and the trainer, each with its HTTP status and
its exit code, drawn in the module's docstring."""

from __future__ import annotations

import re

from recsvc import errors
from training import errors as training_errors


def _classes() -> list[type[errors.RecsvcError]]:
    return [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.RecsvcError)
    ]


def test_the_trainer_and_the_service_raise_the_same_classes() -> None:
    for name in ("StoreUnavailableError", "StoreFullError", "InputError", "NoModelError"):
        assert getattr(training_errors, name) is getattr(errors, name)
    assert issubclass(errors.InputError, errors.BadRequestError)
    assert issubclass(errors.StoreFullError, errors.StoreUnavailableError)


def test_the_docstring_draws_every_class_with_its_status_and_exit_code() -> None:
    doc = errors.__doc__ or ""
    for cls in _classes():
        row = re.search(rf"{cls.__name__}\s+(\d{{3}}) (\w+)\s+exit (\d)", doc)
        if row is None:  # a subclass drawn without numbers shares its parent's
            assert re.search(rf"└── {cls.__name__}\s+\(", doc), cls.__name__
            parent = next(b for b in cls.__mro__[1:] if issubclass(b, errors.RecsvcError))
            assert (cls.status_code, cls.exit_code) == (parent.status_code, parent.exit_code)
            continue
        status, code, exit_code = row.groups()
        assert (cls.status_code, cls.code, cls.exit_code) == (int(status), code, int(exit_code))


def test_exit_codes_are_the_documented_ones() -> None:
    assert (errors.InputError("x").exit_code, errors.LockedError("x").exit_code) == (2, 4)
    assert errors.RefusedError("x").exit_code == 5 and errors.StoreFullError("x").exit_code == 6
    assert errors.NoModelError("x").exit_code == errors.NoLiveModelError("x").exit_code == 7
