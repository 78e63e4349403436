"""Run the SessionService contract against every implementation."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions import LocalSessionService, SessionService
from tests.support.contract import SessionServiceContract
from tests.support.model import InMemorySessionService


class TestLocalFsync(SessionServiceContract):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path

    def make_service(self) -> SessionService:
        return LocalSessionService.open(self.root, durability="fsync")


class TestLocalFlush(TestLocalFsync):
    def make_service(self) -> SessionService:
        return LocalSessionService.open(self.root, durability="flush")


class TestLocalReopenedEachCall(TestLocalFsync):
    """Every call through a fresh service: nothing may depend on in-memory state."""

    def make_service(self) -> SessionService:
        root = self.root

        class Reopening:
            def __getattr__(self, name: str) -> object:
                return getattr(LocalSessionService.open(root), name)

        return Reopening()  # type: ignore[return-value]

    def test_satisfies_protocol(self, service: SessionService) -> None:
        # The proxy forwards by __getattr__, which runtime protocol checks cannot see.
        assert isinstance(LocalSessionService.open(self.root), SessionService)


class TestInMemoryModel(SessionServiceContract):
    def make_service(self) -> SessionService:
        return InMemorySessionService()
