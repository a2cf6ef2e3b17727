"""Ice drift twin benchmark: particle-steps per second against OpenDrift and Parcels on the same forcing.

Forcing: an analytic 200 x 200 lon/lat grid (20-40E, 74-79N), 49 hourly fields of surface current,
10 m wind, sea-ice concentration and thickness, written once to a CF NetCDF file (read by OpenDrift
and Parcels) and turned into a geotwin cube (read by the twin). Every run does 48 hourly steps.

- geotwin ``sea_ice`` (steady free drift per RK4 stage), ``passive`` (RK4 + 2 % wind drift) and
  ``iceberg`` (inertial OpenBerg/Keghouche physics), N particles, one jitted call (compile excluded:
  the second call is timed; the first call's time is printed), all recording every step as the peers
  do; ``sea_ice`` once more recording only the final state (``params={"output_every": "final"}``: the
  run's memory is then O(particles)); then one ensemble (members x 10,000 particles, final state only)
  in one vmapped call;
- peers, each in a fresh process: OpenDrift OceanDrift (RK4 + 2 % wind drift), Parcels AdvectionRK4
  and OpenDrift OpenBerg (roll-over, random walk and wind-derived wave radiation off), and
  OpenDrift SeaIceDrift (Euler, ice velocity from the file) against geotwin ``sea_ice`` with
  ``ice_velocity="forcing"``, ``scheme="euler"`` (key ``forcing_velocity_vs_seaicedrift``), timed around
  ``run``/``execute`` only (reader and particle-set setup excluded), on fewer particles (their cost is linear in N, but small
  runs carry their fixed per-step overhead: the ratios are only fair at a few thousand particles or
  more, so ``--quick`` still uses 5,000);
- ratios are rates measured in this run; agreement: median distance between the end positions of the
  same seeds (geotwin passive vs OceanDrift, geotwin iceberg without added mass vs OpenBerg).

The last line printed is one JSON object. ``--quick`` shrinks the peer runs and the ensemble.
There is no device-specific code: JAX runs on whatever ``jax.devices()[0]`` is (printed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

NX = NY = 200
LON0, LAT0, DLON, DLAT = 20.0, 74.0, 0.1, 0.025
T0 = np.datetime64("2016-02-01T00:00:00", "ns")
STEPS = 48


def _fields() -> dict[str, np.ndarray]:
    lon = LON0 + DLON * (np.arange(NX) + 0.5)
    lat = LAT0 + DLAT * (np.arange(NY) + 0.5)
    th = np.arange(STEPS + 1)[:, None, None] * 3600.0
    lo, la = np.meshgrid(lon, lat)
    lo, la = lo[None], la[None]
    day = 2 * np.pi * th / 86400.0
    out = {
        "lon": lon,
        "lat": lat,
        "uo": 0.15 * np.sin(2 * np.pi * (la - LAT0) / 2.5) + 0.05 * np.cos(day),
        "vo": 0.10 * np.cos(2 * np.pi * (lo - LON0) / 10.0) + 0.05 * np.sin(day),
        "u10": 6.0 + 3.0 * np.sin(day + lo / 10.0) + 0 * la,
        "v10": -4.0 + 2.0 * np.cos(day + la / 3.0) + 0 * lo,
        "sic": np.clip((la - LAT0) / 3.0, 0.0, 1.0) + 0 * th,
        "hi": 0.5 + 1.0 * np.clip((la - LAT0) / 3.0, 0.0, 1.0) + 0 * th,
    }
    # modelled ice velocity (OpenBerg's sea-ice force uses it; without it OpenBerg takes 0)
    out["siu"] = out["uo"] + 0.015 * out["u10"]
    out["siv"] = out["vo"] + 0.015 * out["v10"]
    return out


def write_netcdf(path: Path) -> None:
    """The forcing as a CF NetCDF file (lon/lat grid: x/y components are east/north)."""
    f = _fields()
    times = T0 + np.arange(STEPS + 1) * np.timedelta64(3600, "s")
    dims = ("time", "lat", "lon")
    std = {
        "uo": "x_sea_water_velocity",
        "vo": "y_sea_water_velocity",
        "u10": "x_wind",
        "v10": "y_wind",
        "sic": "sea_ice_area_fraction",
        "hi": "sea_ice_thickness",
        "siu": "sea_ice_x_velocity",
        "siv": "sea_ice_y_velocity",
    }
    data = {
        k: (
            dims,
            f[k].astype("float32"),
            {"standard_name": s, "units": "1" if k == "sic" else ("m" if k == "hi" else "m s-1")},
        )
        for k, s in std.items()
    }
    ds = xr.Dataset(
        data,
        coords={
            "time": ("time", times),
            "lat": ("lat", f["lat"], {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"}),
            "lon": ("lon", f["lon"], {"standard_name": "longitude", "units": "degrees_east", "axis": "X"}),
        },
    )
    ds.to_netcdf(path)


def forcing_cube() -> xr.Dataset:
    """The same forcing as a geotwin cube (EPSG:4326, north-up cell centres, ``spatial_ref``).

    Built with xarray and pyproj alone (no GDAL stack), so ``--kernels-only`` runs on a bare GPU
    machine; :func:`pipelines.cube.verify_cube` accepts it (checked in tests/test_benchmarks.py).
    """
    from pyproj import CRS

    f = _fields()
    times = T0 + np.arange(STEPS + 1) * np.timedelta64(3600, "s")
    names = {
        "uo": "uo",
        "vo": "vo",
        "u10": "u10",
        "v10": "v10",
        "sic": "sea_ice_concentration",
        "hi": "sea_ice_thickness",
        "siu": "siu",
        "siv": "siv",
    }
    units = {"sic": "1", "hi": "m"}
    data = {
        name: xr.DataArray(
            f[k][:, ::-1, :].astype("float32"),  # north-up rows
            dims=("time", "y", "x"),
            attrs={"units": units.get(k, "m s-1"), "long_name": name, "grid_mapping": "spatial_ref"},
        )
        for k, name in names.items()
    }
    crs = CRS.from_epsg(4326)
    coords = {
        "time": ("time", times, {"standard_name": "time", "axis": "T"}),
        "y": ("y", f["lat"][::-1], {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "x": ("x", f["lon"], {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        "spatial_ref": ((), np.int32(0), {"crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt()}),
    }
    attrs = {
        "Conventions": "CF-1.10",
        "geotwin_version": "benchmark",
        "geotwin_sources": "[]",
        "geotwin_config": json.dumps({"benchmark": "ice_drift", "fields": "analytic"}),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def seeds(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lon": rng.uniform(26.0, 34.0, n), "lat": rng.uniform(75.5, 77.5, n)})


def _rss_mb() -> float:
    """Peak resident memory of this process (MB): VmHWM, which, unlike ru_maxrss, is not inherited
    from the parent across fork+exec (the peers run in spawned processes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------- peers (each in its own process)


def _peer(kind: str, nc: str, n: int, queue: mp.Queue) -> None:
    try:
        queue.put(_PEERS[kind](nc, n))
    except Exception as err:  # report, do not hang the benchmark
        queue.put({"error": f"{type(err).__name__}: {err}"})


def _opendrift(model_name: str, nc: str, n: int) -> dict:
    import logging

    logging.disable(logging.WARNING)
    from opendrift.readers import reader_netCDF_CF_generic

    s = seeds(n)
    if model_name == "oceandrift":
        from opendrift.models.oceandrift import OceanDrift

        o = OceanDrift(loglevel=50)
        o.set_config("drift:advection_scheme", "runge-kutta4")
        kw = {"wind_drift_factor": 0.02}
    elif model_name == "seaicedrift":
        from opendrift.models.seaicedrift import SeaIceDrift

        o = SeaIceDrift(loglevel=50)
        kw = {}
    else:
        from opendrift.models.openberg import OpenBerg

        o = OpenBerg(loglevel=50)
        o.set_config("processes:roll_over", False)
        o.set_config("processes:grounding", False)
        o.set_config("environment:fallback:horizontal_diffusivity", 0.0)  # default: a 100 m2/s random walk
        # OpenDrift derives a wave height from the wind when none is given; the cube has no waves
        o.set_config("drift:wave_rad", False)
        kw = {}
    o.set_config("general:use_auto_landmask", False)
    o.set_config("environment:fallback:land_binary_mask", 0)
    o.add_reader(reader_netCDF_CF_generic.Reader(nc))
    o.seed_elements(lon=s["lon"].values, lat=s["lat"].values, time=pd.Timestamp(T0).to_pydatetime(), **kw)
    t = time.perf_counter()
    o.run(steps=STEPS, time_step=3600, time_step_output=3600)
    el = time.perf_counter() - t
    lon = np.asarray(o.result.lon.isel(time=-1).values)
    lat = np.asarray(o.result.lat.isel(time=-1).values)
    return {
        "psteps_per_s": n * STEPS / el,
        "seconds": el,
        "n": n,
        "lon": lon.tolist(),
        "lat": lat.tolist(),
        "peak_rss_mb": _rss_mb(),
    }


def _parcels(nc: str, n: int) -> dict:
    import logging

    import parcels

    logging.disable(logging.WARNING)
    ds = xr.open_dataset(nc).load()
    sg = parcels.convert.copernicusmarine_to_sgrid(
        fields={
            "U": ds["uo"].expand_dims(depth=[0.0], axis=1),
            "V": ds["vo"].expand_dims(depth=[0.0], axis=1),
        }
    )
    fs = parcels.FieldSet.from_sgrid_conventions(sg, mesh="spherical")
    s = seeds(n)
    pset = parcels.ParticleSet(
        fs, pclass=parcels.Particle, x=s["lon"].values, y=s["lat"].values, z=np.zeros(n), t=np.full(n, T0)
    )
    t = time.perf_counter()
    pset.execute(
        parcels.kernels.AdvectionRK4,
        dt=np.timedelta64(3600, "s"),
        runtime=np.timedelta64(STEPS, "h"),
        verbose_progress=False,
    )
    el = time.perf_counter() - t
    return {
        "psteps_per_s": n * STEPS / el,
        "seconds": el,
        "n": n,
        "peak_rss_mb": _rss_mb(),
        "version": parcels.__version__,
    }


_PEERS = {
    "oceandrift": lambda nc, n: _opendrift("oceandrift", nc, n),
    "openberg": lambda nc, n: _opendrift("openberg", nc, n),
    "seaicedrift": lambda nc, n: _opendrift("seaicedrift", nc, n),
    "parcels": _parcels,
}


def run_peer(kind: str, nc: Path, n: int, timeout: float = 900.0) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peer, args=(kind, str(nc), n, queue))
    proc.start()
    try:
        out = queue.get(timeout=timeout)
    except Exception as err:
        out = {"error": f"no result: {err}"}
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
    return out


# ---------------------------------------------------------------- geotwin


def time_geotwin(
    cube: xr.Dataset, table: pd.DataFrame, model: str, members: int = 1, params: dict | None = None
) -> dict:
    import jax

    from twins.ice.simulate import prepare, run_prepared

    prep = prepare(cube, table, model=model, duration=STEPS * 3600, dt=3600, members=members, params=params)
    t = time.perf_counter()
    jax.block_until_ready(run_prepared(prep))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    final, _ = jax.block_until_ready(run_prepared(prep))
    el = time.perf_counter() - t
    n = len(table) * members
    lon, lat = prep.meta.to_lonlat(np.asarray(final.x)[0], np.asarray(final.y)[0])
    return {
        "psteps_per_s": n * STEPS / el,
        "seconds": el,
        "first_call_s": compile_s,
        "n": n,
        "lon": lon,
        "lat": lat,
    }


def median_distance_m(lon1, lat1, lon2, lat2) -> float:
    from pyproj import Geod

    _, _, d = Geod(ellps="WGS84").inv(np.asarray(lon1), np.asarray(lat1), np.asarray(lon2), np.asarray(lat2))
    return float(np.nanmedian(d))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small peer runs and ensemble (about 1 minute)")
    ap.add_argument("--particles", type=int, default=100_000, help="geotwin particles (default 100,000)")
    ap.add_argument(
        "--peer-particles",
        type=int,
        default=None,
        help="OceanDrift/Parcels particles (default 10,000; quick 2,000)",
    )
    ap.add_argument(
        "--members",
        type=int,
        default=None,
        help="ensemble members x 10,000 particles (default 100; quick 10)",
    )
    ap.add_argument("--no-peers", action="store_true", help="geotwin only")
    ap.add_argument(
        "--kernels-only",
        action="store_true",
        help="geotwin kernels only: no peers and no simulate() cube output (needs only jax, xarray, pyproj)",
    )
    args = ap.parse_args(argv)
    import jax

    dev = jax.devices()[0]
    device = f"{dev.platform}:{getattr(dev, 'device_kind', '')}"
    print(f"device: {device} ({len(jax.devices())} visible)", flush=True)
    peer_n = args.peer_particles or (5_000 if args.quick else 20_000)
    members = args.members or (10 if args.quick else 100)

    cube = forcing_cube()
    table = seeds(args.particles)
    res = {}
    runs = (
        ("sea_ice", "sea_ice", None),
        ("passive", "passive", {"wind_drift_factor": 0.02}),
        ("iceberg", "iceberg", None),
        ("sea_ice_forcing", "sea_ice", {"ice_velocity": "forcing", "scheme": "euler"}),
    )
    for label, model, params in runs:
        res[label] = time_geotwin(cube, table, model, params=params)
        r = res[label]
        print(
            f"geotwin {label:15s}: {r['psteps_per_s'] / 1e6:8.2f} M particle-steps/s ({r['seconds']:.2f} s; first call {r['first_call_s']:.1f} s)",
            flush=True,
        )
    fin = time_geotwin(cube, table, "sea_ice", params={"output_every": "final"})
    rss_kernels = _rss_mb()
    print(
        f"geotwin sea_ice, final state only: {fin['psteps_per_s'] / 1e6:8.2f} M particle-steps/s ({fin['seconds']:.2f} s); peak RSS so far {rss_kernels:.0f} MB",
        flush=True,
    )
    ens = time_geotwin(
        cube,
        seeds(10_000, 1),
        "sea_ice",
        members=members,
        params={"perturb_position_m": 2000.0, "output_every": "final"},
    )
    print(
        f"geotwin ensemble {members} x 10,000: {ens['psteps_per_s'] / 1e6:.2f} M particle-steps/s ({ens['seconds']:.2f} s, one vmapped call, final state only); peak RSS so far {_rss_mb():.0f} MB",
        flush=True,
    )
    e2e = None
    if not args.kernels_only:
        t = time.perf_counter()
        from twins.ice import simulate

        simulate(cube, seeds(10_000), model="sea_ice", duration=STEPS * 3600, dt=3600)
        e2e = round(time.perf_counter() - t, 2)
        print(
            f"geotwin simulate() end to end, 10,000 particles incl. cube output: {e2e:.2f} s; peak RSS so far {_rss_mb():.0f} MB",
            flush=True,
        )
    peak = _rss_mb()

    peers: dict[str, dict] = {}
    if not (args.no_peers or args.kernels_only):
        with tempfile.TemporaryDirectory() as tmp:
            nc = Path(tmp) / "forcing.nc"
            write_netcdf(nc)
            for kind, n in (
                ("oceandrift", peer_n),
                ("parcels", peer_n),
                ("openberg", max(peer_n // 4, 200)),
                ("seaicedrift", peer_n),
            ):
                peers[kind] = run_peer(kind, nc, n)
                msg = (
                    peers[kind].get("error")
                    or f"{peers[kind]['psteps_per_s'] / 1e6:.3f} M particle-steps/s ({n} particles, peak RSS {peers[kind]['peak_rss_mb']:.0f} MB)"
                )
                print(f"{kind:10s}: {msg}", flush=True)

    def rate(kind: str) -> float | None:
        return peers.get(kind, {}).get("psteps_per_s")

    def ratio(ours: float, kind: str) -> float | None:
        r = rate(kind)
        return round(ours / r, 1) if r else None

    agree = {}
    if rate("oceandrift"):
        n = peers["oceandrift"]["n"]
        ref = time_geotwin(cube, seeds(n), "passive", params={"wind_drift_factor": 0.02})
        agree["passive_vs_oceandrift_median_m"] = round(
            median_distance_m(ref["lon"], ref["lat"], peers["oceandrift"]["lon"], peers["oceandrift"]["lat"]),
            1,
        )
    if rate("openberg"):
        n = peers["openberg"]["n"]
        ref = time_geotwin(cube, seeds(n), "iceberg", params={"added_mass": 0.0})
        agree["iceberg_vs_openberg_median_m"] = round(
            median_distance_m(ref["lon"], ref["lat"], peers["openberg"]["lon"], peers["openberg"]["lat"]), 1
        )
    for k, v in agree.items():
        print(f"agreement {k}: {v} m after {STEPS} h", flush=True)
    out = {
        "psteps_per_s": round(res["sea_ice"]["psteps_per_s"]),
        "vs_oceandrift": ratio(res["sea_ice"]["psteps_per_s"], "oceandrift"),
        "vs_parcels": ratio(res["sea_ice"]["psteps_per_s"], "parcels"),
        "iceberg_vs_openberg": ratio(res["iceberg"]["psteps_per_s"], "openberg"),
        "forcing_velocity_vs_seaicedrift": ratio(res["sea_ice_forcing"]["psteps_per_s"], "seaicedrift"),
        "n_particles": args.particles,
        "peak_rss_mb": round(peak, 1),
        "device": device,
        "steps": STEPS,
        "passive_psteps_per_s": round(res["passive"]["psteps_per_s"]),
        "passive_vs_oceandrift": ratio(res["passive"]["psteps_per_s"], "oceandrift"),
        "iceberg_psteps_per_s": round(res["iceberg"]["psteps_per_s"]),
        "sea_ice_final_only_psteps_per_s": round(fin["psteps_per_s"]),
        "peak_rss_mb_before_ensemble": round(rss_kernels, 1),
        "first_call_s": {k: round(v["first_call_s"], 1) for k, v in res.items()},
        "ensemble": {"members": members, "particles": 10_000, "psteps_per_s": round(ens["psteps_per_s"])},
        "simulate_end_to_end_10k_s": e2e,
        "peers": {k: {kk: vv for kk, vv in v.items() if kk not in ("lon", "lat")} for k, v in peers.items()},
        "agreement": agree,
        "quick": bool(args.quick),
    }
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
