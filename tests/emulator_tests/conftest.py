"""A fresh emulator per test, served on loopback with its separate upload host."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulator import Emulator, EmulatorConfig, run_emulator


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator with the default config; tests may tweak `emu.config` live."""
    async with run_emulator(EmulatorConfig()) as running:
        yield running
