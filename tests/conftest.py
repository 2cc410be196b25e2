"""Fixtures shared by the core's tests."""

from __future__ import annotations

import pytest

from toydata import blob


@pytest.fixture
def data() -> bytes:
    return blob()
