"""write_cube's slab writer: slabs partition the array under the byte budget; values round-trip."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipelines.store as store
from pipelines import open_cube
from tests.helpers import assert_same_values, linear_cube


@pytest.mark.parametrize(
    ("chunks", "itemsize", "budget"),
    [
        (((3, 3, 2), (4, 4), (5, 5, 1)), 4, 10**9),  # everything in one slab
        (((3, 3, 2), (4, 4), (5, 5, 1)), 4, 3 * 8 * 11 * 4),  # one block row per slab
        (((3, 3, 2), (4, 4), (5, 5, 1)), 8, 60),  # a block row is too big: split along the next axes
    ],
)
def test_slabs_cover_every_element_once_within_budget(
    chunks: tuple[tuple[int, ...], ...], itemsize: int, budget: int
) -> None:
    shape = tuple(sum(c) for c in chunks)
    count = np.zeros(shape, dtype=int)
    edges = [set(np.cumsum((0,) + c).tolist()) for c in chunks]
    smallest = itemsize * max(int(np.prod(b)) for b in itertools.product(*chunks))
    for region in store._slabs(chunks, itemsize, budget):
        count[region] += 1
        for sl, n, e in zip(region, shape, edges, strict=True):  # slabs are made of whole chunks
            start, stop, _ = sl.indices(n)
            assert start in e and stop in e
        size = itemsize * int(
            np.prod([len(range(*sl.indices(n))) for sl, n in zip(region, shape, strict=True)])
        )
        assert size <= max(budget, smallest)
    assert (count == 1).all()


def test_write_cube_in_small_slabs_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny slab budget (many slabs, split inside block rows) the stored cube equals the input."""
    ds = linear_cube(
        times=pd.date_range("2020-01-01", periods=3, freq="6h"), chunks={"time": 1, "y": 3, "x": 4}
    )
    monkeypatch.setattr(store, "SLAB_BYTES", 64)
    store.write_cube(tmp_path / "s", "c", ds)
    assert_same_values(open_cube(tmp_path / "s", "c").load(), ds.load())
