"""Footprints: area Jacobian vs direct plume sums, FFT map vs Jacobian, stacks with plume rise."""

from __future__ import annotations

import numpy as np
import pytest

from twins.carbon import gaussian_plume
from twins.carbon.plume import briggs_plume_rise
from twins.carbon.transport import PPM_PER_KG_M3, area_footprint, concentration_map, point_footprint

pytestmark = pytest.mark.usefixtures("jax_x64")


def _grid(ny=20, nx=24, dx=200.0):
    x = 550_000.0 + dx / 2 + np.arange(nx) * dx
    y = 4_190_000.0 - dx / 2 - np.arange(ny) * dx
    xx, yy = np.meshgrid(x, y)
    return x, y, np.stack([xx.ravel(), yy.ravel()], axis=1)


def test_ppm_conversion():
    # 1 kg m-3 of CO2 in air of density p M_air / (R T) at 15 C: mole fraction = (1/M_CO2) / (rho/M_air)
    rho = 101325 * 28.9647e-3 / (8.314462618 * 288.15)
    assert PPM_PER_KG_M3 == pytest.approx(1e6 * 28.9647e-3 / (44.0095e-3 * rho), rel=1e-12)
    assert rho == pytest.approx(1.225, abs=1e-3)


def test_area_footprint_is_the_plume_of_each_cell():
    x, y, cells = _grid()
    sensor = np.array([[x[10], y[5] - 30.0, 3.0]])
    u, v, k = np.array([4.0]), np.array([0.0]), np.array([3])  # wind towards +x (from the west)
    f = np.asarray(area_footprint(sensor, cells, 200.0, u, v, k, 10.0, "urban"))[0, 0]
    # cell 3 columns upwind on the same row: downwind 600 m, crosswind -30 m
    j = 5 * 24 + 7
    want = float(gaussian_plume(200.0 * 200.0, 4.0, 600.0, -30.0, 3.0, 10.0, "D", "urban")) * PPM_PER_KG_M3
    assert f[j] == pytest.approx(want, rel=1e-12)
    assert f[5 * 24 + 13] == 0.0  # a downwind cell does not reach the sensor


def test_fft_map_equals_jacobian_at_cell_centres():
    x, y, cells = _grid()
    rng = np.random.default_rng(0)
    flux = rng.random((3, 20, 24)) * 1e-6
    u, v, k = np.array([3.0, -2.0, 0.3]), np.array([1.0, 2.5, -0.2]), np.array([3, 2, 5])
    picks = [(7, 5), (10, 20), (0, 0), (19, 23)]
    sensors = np.array([[x[i], y[j], 3.0] for j, i in picks])
    F = np.asarray(area_footprint(sensors, cells, 200.0, u, v, k, 10.0, "urban"))
    direct = np.einsum("sth,th->st", F, flux.reshape(3, -1))
    cmap = np.asarray(concentration_map(flux, 200.0, -200.0, u, v, k, 3.0, 10.0, "urban"))
    for s, (j, i) in enumerate(picks):
        np.testing.assert_allclose(cmap[:, j, i], direct[s], rtol=1e-9, atol=1e-12)


def test_point_footprint_uses_plume_rise_and_stack_wind():
    sensors = np.array([[1500.0, 40.0, 2.0]])
    stacks = np.array([[0.0, 0.0, 40.0, 2.0, 12.0, 420.0]])
    u, v, k = np.array([5.0]), np.array([0.0]), np.array([3])
    got = float(point_footprint(sensors, stacks, u, v, k, 288.15, "urban")[0, 0, 0])
    us = 5.0 * (40.0 / 10.0) ** 0.25  # ISC3 urban exponent for class D
    heff = 40.0 + float(briggs_plume_rise(us, 2.0, 12.0, 420.0, 288.15, "D"))
    want = float(gaussian_plume(1.0, us, 1500.0, 40.0, 2.0, heff, "D", "urban")) * PPM_PER_KG_M3
    assert got == pytest.approx(want, rel=1e-12)
