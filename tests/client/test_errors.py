"""The error tree: every error pickles with all its attributes (Airflow pickles exceptions across processes)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import airflow_provider_anaplan.client as public
from airflow_provider_anaplan.client import errors
from airflow_provider_anaplan.client.errors import AnaplanError, NameNotFoundError


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def _error_classes() -> list[type[AnaplanError]]:
    _ = public  # imports every module of the client, so subclasses defined outside errors.py are found too
    classes = {getattr(errors, name) for name in errors.__all__} | set(_all_subclasses(AnaplanError))
    return sorted(classes, key=lambda c: (c.__module__, c.__qualname__))


def _instance(cls: type[AnaplanError]) -> AnaplanError:
    if issubclass(cls, NameNotFoundError):
        return cls("import", "Sales Actuals", "model 75A4", ["Sales Actual", "Costs"], ["Sales Actual"])
    error = cls.__new__(cls)
    AnaplanError.__init__(
        error, f"{cls.__name__} happened", status=409, anaplan_message="busy", method="POST", path="/2/0/x"
    )
    error.extra_attribute = {"nested": [1, 2]}  # a subclass's own attribute
    return error


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_pickles_with_all_its_attributes(cls: type[AnaplanError]) -> None:
    error = _instance(cls)
    copy: Any = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert vars(copy) == vars(error)
    assert str(copy) == str(error) and repr(copy) == repr(error) and copy.args == error.args


def test_name_not_found_error_keeps_kind_name_and_close_matches() -> None:
    error = NameNotFoundError("process", "Nightly", "model M", ["Nightly Load", "Weekly"], ["Nightly Load"])
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.name, copy.close_matches) == ("process", "Nightly", ["Nightly Load"])
    assert "Did you mean: 'Nightly Load'" in str(copy)
    assert isinstance(copy, LookupError | ValueError)
