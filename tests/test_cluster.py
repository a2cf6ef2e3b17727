"""Dask cluster configs: shipped YAMLs validate, a local cluster computes, jobqueue scripts are right."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import pytest
import yaml
from dask.utils import parse_bytes

from pipelines.cluster import (
    AddressSpec,
    GatewaySpec,
    JobqueueSpec,
    KubernetesSpec,
    LocalSpec,
    close_client,
    cluster_client,
    get_client,
    get_cluster,
    job_script,
    load_cluster_config,
)
from pipelines.config import ConfigError

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("name", "cls"),
    [("local", LocalSpec), ("slurm", JobqueueSpec), ("kubernetes", KubernetesSpec), ("gateway", GatewaySpec)],
)
def test_shipped_cluster_files_validate(name, cls):
    spec = load_cluster_config(CLUSTER / f"{name}.yaml")
    assert type(spec) is cls


def test_local_cluster_from_yaml_sums_correctly_and_shuts_down():
    spec = load_cluster_config(CLUSTER / "local.yaml")
    n = 1_000_000
    with cluster_client(CLUSTER / "local.yaml") as client:
        cluster = client.cluster
        workers = client.scheduler_info()["workers"].values()
        assert len(workers) == spec.n_workers
        assert {w["nthreads"] for w in workers} == {spec.threads_per_worker}
        assert {w["memory_limit"] for w in workers} == {parse_bytes(spec.memory_limit)}
        total = client.compute(da.arange(n, chunks=n // 10, dtype="int64").sum()).result()
        assert total == n * (n - 1) // 2  # Gauss
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_address_connects_to_a_running_scheduler(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        path = _write(tmp_path, {"kind": "address", "address": cluster.scheduler_address, "timeout": "10s"})
        assert isinstance(load_cluster_config(path), AddressSpec)
        client = get_client(path)
        try:
            assert client.scheduler.address == cluster.scheduler_address
            assert client.submit(sum, range(101)).result() == 5050
        finally:
            close_client(client)
        assert cluster.status.name == "running"  # a cluster we only connected to is left running


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        ({"kind": "local", "n_worker": 2}, "n_worker", "unknown field"),
        ({"kind": "local", "memory_limit": "lots"}, "memory_limit", "a size such as '4GiB'"),
        ({"kind": "local", "n_workers": 0}, "n_workers", "greater than or equal to 1"),
        ({"kind": "warp", "n_workers": 2}, "kind", "expected one of local, address"),
        ({"n_workers": 2}, "kind", "required field is missing"),
        ({"kind": "address", "address": "localhost:8786"}, "address", "should match pattern"),
        ({"kind": "jobqueue", "system": "slurm", "memory": "4GiB"}, "cores", "required field is missing"),
        ({"kind": "jobqueue", "system": "torque", "cores": 1, "memory": "4GiB"}, "system", "'slurm'"),
        ({"kind": "local", "scale": 2, "adapt": {"minimum": 1, "maximum": 3}}, "<root>", "not both"),
    ],
)
def test_bad_cluster_yaml_names_file_field_and_expectation(tmp_path, data, field, expected):
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_cluster_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert expected in message


def test_slurm_job_script_follows_the_yaml():
    pytest.importorskip("dask_jobqueue")
    spec = load_cluster_config(CLUSTER / "slurm.yaml")
    script = job_script(CLUSTER / "slurm.yaml", scheduler="tcp://10.0.0.1:8786")
    lines = script.splitlines()
    assert f"#SBATCH -p {spec.queue}" in lines
    assert f"#SBATCH -A {spec.account}" in lines
    assert f"#SBATCH --cpus-per-task={spec.cores}" in lines
    assert f"#SBATCH -t {spec.walltime}" in lines
    assert "#SBATCH --exclusive" in lines
    assert all(line in lines for line in spec.job_script_prologue)
    worker = next(line for line in lines if "dask_worker" in line).split()
    assert "tcp://10.0.0.1:8786" in worker
    assert worker[worker.index("--nworkers") + 1] == str(spec.processes)
    assert int(worker[worker.index("--nthreads") + 1]) == spec.cores // spec.processes
    per_worker = parse_bytes(worker[worker.index("--memory-limit") + 1])
    assert per_worker == pytest.approx(parse_bytes(spec.memory) / spec.processes, rel=1e-3)


def test_slurm_cluster_object_builds_the_same_script_without_submitting(tmp_path):
    pytest.importorskip("dask_jobqueue")
    data = yaml.safe_load((CLUSTER / "slurm.yaml").read_text())
    data["scheduler_options"] = {"dashboard_address": None, "host": "127.0.0.1"}
    data.pop("adapt")
    path = _write(tmp_path, data)
    cluster = get_cluster(path)  # SLURMCluster with an in-process scheduler; no job is submitted
    try:
        script = cluster.job_script()
        assert "#SBATCH --cpus-per-task=32" in script and "#SBATCH --mem=128G" in script
        assert cluster.scheduler_address in script
        assert len(cluster.workers) == 0
    finally:
        cluster.close()


def test_pbs_job_script():
    pytest.importorskip("dask_jobqueue")
    spec = {
        "kind": "jobqueue",
        "system": "pbs",
        "cores": 8,
        "memory": "16GiB",
        "queue": "workq",
        "walltime": "00:30:00",
    }
    lines = job_script(spec).splitlines()
    assert "#PBS -q workq" in lines
    assert "#PBS -l walltime=00:30:00" in lines
    assert any(line.startswith("#PBS -l select=1:ncpus=8:mem=") for line in lines)


def test_job_script_refuses_non_jobqueue_config():
    with pytest.raises(ConfigError, match="'jobqueue'"):
        job_script(CLUSTER / "local.yaml")


@pytest.mark.parametrize(("name", "module"), [("kubernetes", "dask_kubernetes"), ("gateway", "dask_gateway")])
def test_missing_optional_backend_says_what_to_install(name, module):
    try:
        __import__(module)
    except ImportError:
        pass
    else:
        pytest.skip(f"{module} is installed")
    with pytest.raises(ImportError, match=module.replace("_", "-")):
        get_cluster(CLUSTER / f"{name}.yaml")
