"""Ice twin physics against analytic solutions (float64 under jax x64).

Facts checked: exact displacement in a uniform current (on a distortion-free grid and along a
parallel on EPSG:3413), RK4 keeps particles on their circle in solid-body rotation while Euler spirals
out, the inertial oscillation has period 2π/f, steady free drift matches the quartic's root from
numpy.roots (0.1608 m/s, 32.07° right of a 10 m/s wind at 80°N), the iceberg reaches the analytic
drag-balance speed, ice velocity from the forcing and the wind-factor rule are followed exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from jax import enable_x64 as _enable_x64
from pyproj import Geod

from tests.test_ice_support import EQC0, ST80, forcing_cube, grid
from twins.ice import simulate
from twins.ice.physics import IceParams, free_drift_relative

OMEGA = 7.2921e-5


def enable_x64():
    """Context manager: float64 JAX inside the block."""
    return _enable_x64(True)


def _seed(x: float, y: float) -> pd.DataFrame:
    return pd.DataFrame({"x": [x], "y": [y]})


def test_uniform_current_exact_displacement():
    with enable_x64():
        g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
        f = forcing_cube(g, uo=0.3, vo=-0.2)
        r = simulate(f, _seed(-10_000.0, 10_000.0), model="passive", duration="10h", dt="1h")
    assert r["x"].dtype == np.float64
    # eqc at the equator: east = +x, north = +y, scale 1/cos(lat) <= 1 + 1.2e-6 inside this grid
    np.testing.assert_allclose(r["x"].values[0, -1] + 10_000.0, 0.3 * 36_000.0, rtol=2e-6)
    np.testing.assert_allclose(r["y"].values[0, -1] - 10_000.0, -0.2 * 36_000.0, rtol=1e-9)


def test_uniform_eastward_current_follows_parallel_on_polar_stereographic():
    """EPSG:3413 rotates east by up to 90° across the grid; an eastward current must keep latitude."""
    with enable_x64():
        g = grid("EPSG:3413", 0, -1_000_000, 50, 50, 10_000)
        f = forcing_cube(g, uo=0.5, vo=0.0)
        r = simulate(f, _seed(200_000.0, -800_000.0), model="passive", duration="48h", dt="1h")
    lat = r["lat"].values[0]
    lon = r["lon"].values[0]
    assert np.ptp(lat) < 1e-5
    a, e2 = 6378137.0, 0.00669437999014  # WGS84: radius of the parallel is N cos(lat)
    phi = np.deg2rad(lat[0])
    radius = a / np.sqrt(1 - e2 * np.sin(phi) ** 2) * np.cos(phi)
    arc = np.deg2rad(lon[-1] - lon[0]) * radius
    # 86.4 km; the map Jacobian is interpolated bilinearly between 10 km cells: 5e-5 relative
    np.testing.assert_allclose(arc, 0.5 * 48 * 3600, rtol=5e-5)


def test_uniform_northward_current_geodesic_distance():
    with enable_x64():
        g = grid("EPSG:3413", 0, -1_000_000, 50, 50, 10_000)
        f = forcing_cube(g, uo=0.0, vo=0.25)
        r = simulate(f, _seed(250_000.0, -700_000.0), model="passive", duration="24h", dt="1h")
    lon, lat = r["lon"].values[0], r["lat"].values[0]
    _, _, dist = Geod(ellps="WGS84").inv(lon[0], lat[0], lon[-1], lat[-1])
    np.testing.assert_allclose(dist, 0.25 * 86400, rtol=5e-5)
    assert abs(lon[-1] - lon[0]) < 1e-4  # stays on its meridian


@pytest.mark.parametrize(("scheme", "ok"), [("rk4", True), ("euler", False)])
def test_solid_body_rotation_stays_on_circle(scheme, ok):
    period = 24 * 3600.0
    om = 2 * np.pi / period
    with enable_x64():
        g = grid(EQC0, -20_000, -20_000, 40, 40, 1_000)
        f = forcing_cube(g, uo=lambda t, y, x: -om * y, vo=lambda t, y, x: om * x)
        r = simulate(
            f,
            _seed(5_000.0, 0.0),
            model="passive",
            duration=10 * period,
            dt="30min",
            params={"scheme": scheme},
        )
    radius = np.hypot(r["x"].values[0], r["y"].values[0]) / 5_000.0
    z = 1j * om * 1800.0  # one step of du/dt = iωu multiplies the radius by |R(z)|
    if ok:
        # RK4: |1 + z + z²/2 + z³/6 + z⁴/24| = 1 - 3.5e-8 per step (ω dt = 0.131): 1.7e-5 after 10 turns
        amp = abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)
        # tolerance: the eqc grid's x scale 1/cos(lat) deviates from 1 by < 7e-7 within 7.5 km of the equator
        np.testing.assert_allclose(radius, amp ** np.arange(radius.size), rtol=1e-6)
        assert np.max(np.abs(radius - 1)) < 2e-5
        np.testing.assert_allclose(r["y"].values[0, -1], 0.0, atol=1.0)  # phase kept: back at the start
    else:
        # Euler: |1 + z| = 1.0086 per step: the radius grows by 1.50 in one turn (48 steps)
        np.testing.assert_allclose(radius[:49], abs(1 + z) ** np.arange(49), rtol=1e-6)
        assert radius[48] > 1.5


def test_inertial_oscillation_period():
    """No wind, no current, no water drag: a floe launched at 0.1 m/s circles with period 2π/f."""
    with enable_x64():
        g = grid(ST80, -20_000, -20_000, 40, 40, 1_000)
        f = forcing_cube(g, uo=0.0, vo=0.0, u10=0.0, v10=0.0)
        fcor = 2 * OMEGA * np.sin(np.deg2rad(80.0))
        period = 2 * np.pi / fcor  # 12.15 h
        n = 400
        dt = period / n
        from twins.ice import kernel
        from twins.ice.adapter import forcing_arrays
        from twins.ice.physics import Config

        arrays, chans, _ = forcing_arrays(f, model="sea_ice", dynamics="inertial")
        cfg = Config(model="sea_ice", dynamics="inertial")
        import jax.numpy as jnp

        from twins.core import GridSpec

        fj = kernel.Forcing(
            jnp.asarray(arrays["fields"]),
            jnp.asarray(arrays["times"]),
            GridSpec(*jnp.asarray(arrays["grid"])),
        )
        one = jnp.ones(1)
        state = kernel.Particles(
            0 * one, 0 * one, 0.1 * one, 0 * one, jnp.zeros(1, jnp.int32), 0 * one, jnp.zeros(())
        )
        p = IceParams(cw_ice=0.0, ca_ice=0.0)
        _, (xs, ys, _) = kernel.run(cfg, chans, n, dt, fj, p, state, {})
    xs, ys = np.asarray(xs[:, 0]), np.asarray(ys[:, 0])
    r = 0.1 / fcor  # 696 m inertial radius
    # the floe starts eastward and turns right (clockwise): centre at (0, -r); after one period it is back.
    # Tolerance: f varies by 4e-5 across the circle (beta effect), i.e. < 0.2 m per turn.
    np.testing.assert_allclose([xs[-1], ys[-1]], [0.0, 0.0], atol=5e-4 * r)
    np.testing.assert_allclose(np.hypot(xs, ys + r), r, rtol=1e-4)
    half = n // 2 - 1  # after half a period it is at the far side of the circle
    np.testing.assert_allclose([xs[half], ys[half]], [0.0, -2 * r], atol=5e-4 * r)


def _free_drift_reference(wind=10.0, lat=80.0):
    rho_a, ca, rho_w, cw, rho_i, h, th = 1.3, 1.2e-3, 1026.0, 5.5e-3, 917.0, 1.0, np.deg2rad(25.0)
    fc = 2 * OMEGA * np.sin(np.deg2rad(lat))
    a, b, t = rho_w * cw, rho_i * h * fc, rho_a * ca * wind * wind
    roots = np.roots([a * a, 2 * a * b * np.sin(th), b * b, 0.0, -t * t])
    s = max(r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0)
    angle = -np.degrees(np.arctan2(a * s * np.sin(th) + b, a * s * np.cos(th)))
    return s, angle


def test_free_drift_closed_form():
    s, angle = _free_drift_reference()
    assert s == pytest.approx(0.160776, abs=1e-6)  # the docstring's worked numbers
    assert angle == pytest.approx(-32.066, abs=1e-3)
    with enable_x64():
        import jax.numpy as jnp

        fc = 2 * OMEGA * np.sin(np.deg2rad(80.0))
        b = 917.0 * fc
        ur = complex(free_drift_relative(jnp.asarray(0.156 + 0j), 1026 * 5.5e-3, b, np.deg2rad(25.0)))
        # the momentum balance itself: τa - a|Ur|e^{iθ}Ur - i b Ur = 0
        resid = 0.156 - 1026 * 5.5e-3 * abs(ur) * np.exp(1j * np.deg2rad(25.0)) * ur - 1j * b * ur
        assert abs(resid) < 1e-12
        assert abs(ur) == pytest.approx(s, rel=1e-10)
        # through simulate: eastward wind at 80N on the eqc grid (east = +x), one hour of drift
        g = grid(ST80, -20_000, -20_000, 40, 40, 1_000)
        f = forcing_cube(g, uo=0.0, vo=0.0, u10=10.0, v10=0.0)
        r = simulate(f, _seed(0.0, 0.0), model="sea_ice", duration="1h", dt="1h")
    # the ice keeps a fixed angle to local east: a rhumb line; measure it with isometric latitude
    lon, lat = np.deg2rad(r["lon"].values[0]), np.deg2rad(r["lat"].values[0])
    dpsi = np.diff(np.log(np.tan(np.pi / 4 + lat / 2)))[0]
    dlon = np.diff(lon)[0]
    assert np.degrees(np.arctan2(dpsi, dlon)) == pytest.approx(angle, abs=1e-3)
    dist = 6371000.0 * np.hypot(np.cos(lat.mean()) * dlon, np.diff(lat)[0])
    assert dist / 3600 == pytest.approx(s, rel=1e-4)


def test_free_drift_inertial_converges_to_steady():
    """With inertia (exponential integrator, stable at 1 h steps), the floe relaxes to the steady drift."""
    s, _ = _free_drift_reference()
    with enable_x64():
        g = grid(ST80, -100_000, -100_000, 100, 100, 2_000)
        f = forcing_cube(g, uo=0.0, vo=0.0, u10=10.0, v10=0.0)
        runs = [
            simulate(
                f, _seed(0.0, 50_000.0), model="sea_ice", duration="36h", dt="1h", params={"dynamics": d}
            )
            for d in ("inertial", "steady")
        ]
    (dxi, dyi), (dxs, dys) = [(np.diff(r["x"].values[0]), np.diff(r["y"].values[0])) for r in runs]
    # released with the steady velocity of its momentum balance: no spin-up from rest
    np.testing.assert_allclose(np.hypot(dxi[0], dyi[0]), np.hypot(dxs[0], dys[0]), rtol=2e-3)
    # after the spin-up (response time ~1000 s, inertial ringing damped) it drifts like the steady solution
    # 1e-4: the inertial model carries the spherical metric term (6e-4 of f here), the steady one has no Du/Dt
    np.testing.assert_allclose(np.hypot(dxi, dyi)[10:], np.hypot(dxs, dys)[10:], rtol=1e-4)
    np.testing.assert_allclose(
        np.hypot(dxs, dys)[0] / 3600, s, rtol=1e-4
    )  # 80.45N, not 80N: f is 0.3% larger
    np.testing.assert_allclose(np.arctan2(dyi, dxi)[10:], np.arctan2(dys, dxs)[10:], atol=1e-3)  # 0.06°


def test_iceberg_reaches_drag_balance_speed():
    """At the equator (f ~ 0), still water, wind U: Dw V² = Da (U - V)² → V = U √Da / (√Dw + √Da)."""
    p = IceParams()
    length, width, draft, sail = 100.0, 30.0, 90.0, 10.0
    dw = (
        0.5 * p.rho_water * p.berg_water_form_drag * length * draft
        + p.rho_water * p.berg_water_skin_drag * length * width
    )
    da = (
        0.5 * p.rho_air * p.berg_air_form_drag * length * sail
        + p.rho_air * p.berg_air_skin_drag * length * width
    )
    expected = 15.0 * np.sqrt(da) / (np.sqrt(dw) + np.sqrt(da))  # 0.381 m/s
    with enable_x64():
        g = grid(EQC0, -200_000, -100_000, 200, 100, 2_000)
        f = forcing_cube(g, uo=0.0, vo=0.0, u10=15.0, v10=0.0, sea_ice_concentration=0.0)
        seeds = pd.DataFrame(
            {
                "x": [-150_000.0],
                "y": [0.0],
                "length": [length],
                "width": [width],
                "draft": [draft],
                "sail": [sail],
            }
        )
        r = simulate(f, seeds, model="iceberg", duration="48h", dt="1h")
    speed = np.diff(r["x"].values[0])[-5:] / 3600
    np.testing.assert_allclose(speed, expected, rtol=1e-3)
    assert abs(np.diff(r["y"].values[0])[-1]) < 1e-3 * 3600 * expected  # f ≈ 0: no turning


def test_iceberg_locked_in_pack_and_sea_ice_from_forcing():
    with enable_x64():
        g = grid(EQC0, -50_000, -50_000, 50, 50, 2_000)
        f = forcing_cube(g, uo=0.1, vo=0.0, u10=5.0, v10=5.0, siu=-0.05, siv=0.12, sea_ice_concentration=0.95)
        r_b = simulate(f, _seed(0.0, 0.0), model="iceberg", duration="6h", dt="1h")
        r_i = simulate(
            f, _seed(0.0, 0.0), model="sea_ice", duration="6h", dt="1h", params={"ice_velocity": "forcing"}
        )
        r_w = simulate(
            f,
            _seed(0.0, 0.0),
            model="sea_ice",
            duration="6h",
            dt="1h",
            params={"ice_velocity": "wind_factor", "wind_factor": 0.02},
        )
    for r in (r_b, r_i):
        np.testing.assert_allclose(
            [r["x"].values[0, -1], r["y"].values[0, -1]], [-0.05 * 21600, 0.12 * 21600], rtol=1e-4
        )
    np.testing.assert_allclose(
        [r_w["x"].values[0, -1], r_w["y"].values[0, -1]], [(0.1 + 0.1) * 21600, 0.1 * 21600], rtol=1e-4
    )


def test_linear_in_time_current():
    """u(t) = a + b t (two forcing times): displacement a T + b T²/2 (RK4 is exact for this)."""
    times = pd.date_range("2016-02-01T12:00", periods=3, freq="12h")
    with enable_x64():
        g = grid(EQC0, -50_000, -50_000, 20, 20, 5_000)
        f = forcing_cube(g, times=times, uo=lambda t, y, x: 0.1 + 2e-6 * t + 0 * x, vo=0.0)
        r = simulate(f, _seed(-40_000.0, 0.0), model="passive", duration="24h", dt="1h")
    big_t = 86400.0
    np.testing.assert_allclose(r["x"].values[0, -1] + 40_000.0, 0.1 * big_t + 1e-6 * big_t**2, rtol=2e-6)


def test_sea_surface_tilt_from_ssh_equals_geostrophic_assumption():
    """η = -α y with the geostrophic current u = g α / f: tilt from the SSH gradient = the geostrophic form."""
    alpha = 1.464e-6  # gives u ≈ 0.1 m/s at 80N
    with enable_x64():
        g = grid(ST80, -50_000, -50_000, 50, 50, 2_000)
        from pyproj import Transformer

        to_ll = Transformer.from_crs(ST80, "EPSG:4326", always_xy=True)

        def u_geo(t, y, x):
            lat = to_ll.transform(x, y)[1]
            return 9.81 * alpha / (2 * OMEGA * np.sin(np.deg2rad(lat)))

        f = forcing_cube(g, uo=u_geo, vo=0.0, u10=6.0, v10=-4.0, zos=lambda t, y, x: -alpha * y)
        seeds = _seed(0.0, 0.0)
        r_ssh = simulate(f, seeds, model="sea_ice", duration="6h", dt="1h", params={"tilt": "ssh"})
        r_geo = simulate(f, seeds, model="sea_ice", duration="6h", dt="1h", params={"tilt": "geostrophic"})
        r_none = simulate(f, seeds, model="sea_ice", duration="6h", dt="1h", params={"tilt": "none"})
    assert r_ssh.attrs["tilt"] == "ssh"
    d = np.hypot(
        r_ssh["x"].values[0, -1] - r_geo["x"].values[0, -1],
        r_ssh["y"].values[0, -1] - r_geo["y"].values[0, -1],
    )
    moved = np.hypot(r_geo["x"].values[0, -1], r_geo["y"].values[0, -1])
    off = np.hypot(
        r_none["x"].values[0, -1] - r_geo["x"].values[0, -1],
        r_none["y"].values[0, -1] - r_geo["y"].values[0, -1],
    )
    assert d < 1e-3 * moved  # 3.8 km drift: the two tilt forms agree to 0.4 m
    assert off > 50 * d  # and the tilt term matters (319 m without it)
