"""Numba gather kernel of :mod:`pipelines.fastwarp` (imported only when Numba is installed).

Defined at module level so that Numba caches the compiled code on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _interp(col, row, i, j, fy, fx, period):  # noqa: ANN001, ANN202
    """Source (col, row) bilinearly interpolated in lattice cell (i, j) at fractions (fy, fx)."""
    c00 = col[i, j]
    c01 = col[i, j + 1]
    c10 = col[i + 1, j]
    c11 = col[i + 1, j + 1]
    if period > 0:  # unwrap longitudes to the first corner
        c01 -= period * math.floor((c01 - c00) / period + 0.5)
        c10 -= period * math.floor((c10 - c00) / period + 0.5)
        c11 -= period * math.floor((c11 - c00) / period + 0.5)
    c = (c00 * (1 - fx) + c01 * fx) * (1 - fy) + (c10 * (1 - fx) + c11 * fx) * fy
    r = (row[i, j] * (1 - fx) + row[i, j + 1] * fx) * (1 - fy) + (
        row[i + 1, j] * (1 - fx) + row[i + 1, j + 1] * fx
    ) * fy
    return c, r


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _valid(v, nod, has_nod):  # noqa: ANN001, ANN202
    return v == v and not (has_nod and v == nod)


@njit(nogil=True, cache=True, error_model="numpy")
def gather(src, out, lv1, lv2, lv3, y0, x0, step, substep, period, global_x, nearest, nod, has_nod):  # noqa: ANN001, ANN201, PLR0912, PLR0913, PLR0915
    """Fill ``out[b, yy, xx]`` (output pixel ``(y0 + yy, x0 + xx)``) from ``src[b]``.

    ``lv1 = (col, row, patch)``, ``lv2 = (sub_col, sub_row, subpatch)``, ``lv3 = (exact_col, exact_row)``
    (see :class:`pipelines.fastwarp.CoordPlan`). Bilinear follows GDAL: the source pixel containing the
    point must be valid; the 2x2 neighbours outside the source or missing are skipped and the weights
    renormalised. Nearest takes the containing pixel.
    """
    col, row, patch = lv1
    scol, srow, subpatch = lv2
    ecol, erow = lv3
    nb, h, w = src.shape
    oh, ow = out.shape[1], out.shape[2]
    wmax = period if global_x else w
    for yy in range(oh):
        y = y0 + yy
        i = y // step
        ly = y - i * step
        for xx in range(ow):
            x = x0 + xx
            j = x // step
            lx = x - j * step
            p = patch[i, j]
            if p < 0:
                c, r = _interp(col, row, i, j, ly / step, lx / step, period)
            else:
                a = ly // substep
                b = lx // substep
                q = subpatch[p, a, b]
                if q < 0:
                    fy = (ly - a * substep) / substep
                    fx = (lx - b * substep) / substep
                    c, r = _interp(scol[p], srow[p], a, b, fy, fx, period)
                else:
                    c = ecol[q, ly - a * substep, lx - b * substep]
                    r = erow[q, ly - a * substep, lx - b * substep]
            if period > 0 and c == c:
                c -= period * math.floor(c / period)
                if c >= period:  # -tiny wraps to exactly ``period`` in floating point
                    c -= period
            if not (r >= 0.0 and r < h and c >= 0.0 and c < wmax):
                for bb in range(nb):
                    out[bb, yy, xx] = np.nan
                continue
            ri = min(int(r), h - 1)
            ci = min(int(c), w - 1)
            if nearest:
                for bb in range(nb):
                    v = src[bb, ri, ci]
                    out[bb, yy, xx] = v if _valid(v, nod, has_nod) else np.nan
                continue
            fr = r - 0.5
            fc = c - 0.5
            r0 = int(math.floor(fr))
            c0 = int(math.floor(fc))
            wr1 = fr - r0
            wc1 = fc - c0
            c1 = c0 + 1
            ok_c0 = c0 >= 0
            ok_c1 = c1 < w
            if global_x:
                if not ok_c0:
                    c0 += w
                if not ok_c1:
                    c1 -= w
                ok_c0 = True
                ok_c1 = True
            ok_r0 = r0 >= 0
            ok_r1 = r0 + 1 < h
            for bb in range(nb):
                if not _valid(src[bb, ri, ci], nod, has_nod):
                    out[bb, yy, xx] = np.nan
                    continue
                acc = 0.0
                wsum = 0.0
                if ok_r0:
                    if ok_c0:
                        v = src[bb, r0, c0]
                        if _valid(v, nod, has_nod):
                            acc += (1 - wr1) * (1 - wc1) * v
                            wsum += (1 - wr1) * (1 - wc1)
                    if ok_c1:
                        v = src[bb, r0, c1]
                        if _valid(v, nod, has_nod):
                            acc += (1 - wr1) * wc1 * v
                            wsum += (1 - wr1) * wc1
                if ok_r1:
                    if ok_c0:
                        v = src[bb, r0 + 1, c0]
                        if _valid(v, nod, has_nod):
                            acc += wr1 * (1 - wc1) * v
                            wsum += wr1 * (1 - wc1)
                    if ok_c1:
                        v = src[bb, r0 + 1, c1]
                        if _valid(v, nod, has_nod):
                            acc += wr1 * wc1 * v
                            wsum += wr1 * wc1
                out[bb, yy, xx] = acc / wsum if wsum > 1e-6 else np.nan
