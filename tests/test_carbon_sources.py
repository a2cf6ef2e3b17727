"""Facility and sensor readers: GPPD, factories CSV/GeoJSON, AQMesh, BEACO2N (real files when present)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from pipelines.sources.facilities import COLUMNS, FacilityError, read_facilities, read_factories, read_gppd
from pipelines.sources.sensors import SensorError, observation_matrix, read_aqmesh, read_beaco2n, read_sites
from tests.conftest import shared_file


def test_gppd_full_usa_file(shared_data):
    path = shared_file(shared_data, "emissions/gppd_database_USA.csv")
    raw = pd.read_csv(path, low_memory=False)
    usable = raw["primary_fuel"].notna() & raw["latitude"].notna() & raw["longitude"].notna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        gdf = read_gppd(path)
    assert len(gdf) == int(usable.sum())
    assert gdf.attrs["dropped_no_fuel"] == int(raw["primary_fuel"].isna().sum())
    assert list(gdf.columns[:-1]) == list(COLUMNS) and gdf.crs.to_epsg() == 4326
    # the latest reported generation year wins: compare one plant by hand
    row = raw[usable & raw["generation_gwh_2019"].notna()].iloc[0]
    got = gdf[gdf["facility_id"] == row["gppd_idnr"]].iloc[0]
    assert got["generation_mwh"] == pytest.approx(max(row["generation_gwh_2019"], 0) * 1000)
    assert got["generation_year"] == 2019


def test_gppd_oakland_bbox(shared_data):
    path = shared_file(shared_data, "emissions/gppd_database_USA.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        gdf = read_gppd(path, bbox=(-122.35, 37.7, -122.15, 37.9))
    assert "Dynegy Oakland Power Plant" in set(gdf["name"])
    dyn = gdf[gdf["name"] == "Dynegy Oakland Power Plant"].iloc[0]
    assert dyn["fuel"] == "oil" and dyn["capacity_mw"] == pytest.approx(223.5)


def test_gppd_errors(tmp_path):
    bad = tmp_path / "g.csv"
    bad.write_text(
        "gppd_idnr,name,capacity_mw,latitude,longitude,primary_fuel\nX1,a,10,37.8,-122.3,Unobtainium\n"
    )
    with pytest.raises(FacilityError, match=r"unknown fuel.*Unobtainium"):
        read_gppd(bad)
    bad.write_text("gppd_idnr,name,latitude,longitude,primary_fuel\nX1,a,37.8,-122.3,Gas\n")
    with pytest.raises(FacilityError, match=r"missing column.*capacity_mw"):
        read_gppd(bad)


def test_factories_csv_and_geojson(tmp_path):
    csv = tmp_path / "f.csv"
    csv.write_text(
        "name,x,y,co2_t_per_year,fuel,stack_height_m\nSteelworks,560000,4180000,120000,coal,80\nBakery,561000,4181000,900,,\n"
    )
    with pytest.raises(FacilityError, match="crs"):
        read_factories(csv)
    gdf = read_factories(csv, crs="EPSG:32610")
    assert gdf.crs.to_epsg() == 32610 and list(gdf["sector"]) == ["ippu", "ippu"]
    assert gdf["co2_t_per_year"].tolist() == [120000.0, 900.0] and gdf["stack_height_m"].iloc[0] == 80.0
    gj = tmp_path / "f.geojson"
    feats = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-122.3, 37.8]},
         "properties": {"name": "Cement", "co2_t_per_year": 5e4, "sector": "ippu"}},
    ]  # fmt: skip
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    g2 = read_facilities(gj)
    assert g2.iloc[0]["name"] == "Cement" and g2.geometry.iloc[0].x == pytest.approx(-122.3)
    csv.write_text("name,latitude,longitude\nA,37.8,-122.3\n")
    with pytest.raises(FacilityError, match="co2_t_per_year"):
        read_factories(csv)


def test_aqmesh_real(shared_data):
    data = shared_file(shared_data, "emissions/openghg_co2_data.csv")
    meta = shared_file(shared_data, "emissions/openghg_co2_metadata.csv")
    sites, obs = read_aqmesh(data, meta)
    raw = pd.read_csv(data)
    valid = pd.to_numeric(raw["co2_ppm"], errors="coerce")
    assert len(obs) == int((valid.notna() & (valid > -999)).sum())
    assert len(sites) == len(pd.read_csv(meta)) and sites.crs.to_epsg() == 4326
    briar = sites[sites["name"] == "Briar Road Clydebank"].iloc[0]
    assert briar.geometry.y == pytest.approx(55.91796)
    first = obs[obs["site_id"] == "11245"].iloc[0]
    assert first["time"] == pd.Timestamp("2021-06-16 01:00") and first["co2_ppm"] == pytest.approx(413.76)


def test_beaco2n_real_missing_values(shared_data):
    path = shared_file(shared_data, "emissions/openghg_175_BELLAHOUSTONACADEMY.csv")
    sites, obs = read_beaco2n(path, latitude=55.846, longitude=-4.316)
    raw = pd.read_csv(path)
    assert len(obs) == int((raw["co2_ppm"] > -999).sum())  # -999 marks missing
    assert obs["co2_ppm"].min() > 300 and sites.iloc[0]["site_id"] == "175"
    # the 'datetime' column (UTC) is used, not 'local_timestamp'
    assert obs["time"].iloc[0] == pd.Timestamp(raw.loc[raw["co2_ppm"] > -999, "datetime"].iloc[0])


def test_sites_and_observation_matrix(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("site_id,latitude,longitude\nA,37.8,-122.3\nA,37.7,-122.2\n")
    with pytest.raises(SensorError, match="duplicate"):
        read_sites(p)
    p.write_text("site_id,latitude,longitude\nA,97.8,-122.3\n")
    with pytest.raises(SensorError, match="out-of-range"):
        read_sites(p)
    obs = pd.DataFrame(
        {"time": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:10", "2024-01-01 00:50"]),
         "site_id": ["A", "A", "B"], "co2_ppm": [410.0, 412.0, 420.0]}
    )  # fmt: skip
    m = observation_matrix(obs, ["A", "B"], pd.date_range("2024-01-01", periods=3, freq="h"))
    np.testing.assert_array_equal(m[0], [410.0, 412.0, np.nan])
    np.testing.assert_array_equal(m[1], [np.nan, 420.0, np.nan])


def test_flares_table(tmp_path):
    from pipelines.sources.facilities import read_flares

    p = tmp_path / "flares.csv"
    p.write_text("name,latitude,longitude,gas_rate_sm3_per_day\nW1,60.1,2.5,1000\nW2,60.2,2.6,0\n")
    gdf = read_flares(p)
    assert list(gdf["flare_efficiency"]) == [0.98, 0.98] and list(gdf["sector"]) == ["stationary_energy"] * 2
    assert gdf["co2_t_per_year"].isna().all()  # computed by the inventory
    p.write_text("name,latitude,longitude,gas_rate_sm3_per_day,flare_efficiency\nW1,60.1,2.5,1000,1.2\n")
    with pytest.raises(FacilityError, match="flare_efficiency"):
        read_flares(p)
