"""Dependency providers shared by the API route handlers."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency

from hub.services import Services


def provide_services(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


ServicesDep = NamedDependency[Services]
