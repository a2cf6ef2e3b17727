"""Shared fixtures: the real-data folder ../shared/data (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GEOTWIN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; tests using it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real-data folder {SHARED_DATA} is absent (set GEOTWIN_SHARED_DATA to point at shared/data)"
        )
    return SHARED_DATA


def shared_file(shared_data: Path, relative: str) -> Path:
    """A file under shared/data, skipping the test when that file is missing."""
    path = shared_data / relative
    if not path.exists():
        pytest.skip(f"{path} is absent from shared/data")
    return path


def edited_copy(source: Path, out: Path, old: str, new: str, count: int = -1) -> Path:
    """Write ``source``'s text to ``out`` with ``old`` replaced by ``new`` (``count`` times; all by
    default) and return ``out``; ``old`` must occur, so that an edit cannot silently do nothing."""
    text = source.read_text()
    assert old in text, f"{old!r} not in {source}"
    out.write_text(text.replace(old, new, count))
    return out


@pytest.fixture(scope="module")
def jax_x64():
    """float64 JAX for a module's physics checks (the twins' default is float32).

    Compiled float32 variants from other modules must not be reused under x64, hence the cache clears.
    """
    import jax

    jax.clear_caches()
    with jax.enable_x64(True):
        yield
    jax.clear_caches()


@pytest.fixture
def reservoir_x64():
    """float64 for one reservoir test, set process-wide and restored (see twins.reservoir.run.x64_scope)."""
    from twins.reservoir.run import x64_scope

    with x64_scope():
        yield
