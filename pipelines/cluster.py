"""Start or connect a dask cluster from a YAML file in ``cluster/`` (never a home-made cluster).

A cluster file has a ``kind`` and that kind's options, validated with pydantic (errors name the file
and the field):

``local`` (default)
    :class:`distributed.LocalCluster` with ``n_workers``, ``threads_per_worker``, ``memory_limit``.
``address``
    Connect to a running scheduler (``tcp://host:8786``).
``jobqueue``
    An HPC batch system through dask-jobqueue (``system: slurm|pbs|sge|lsf|htcondor|moab|oar``);
    workers are batch jobs (extra ``geotwin[cluster]``).
``kubernetes``
    :class:`dask_kubernetes.operator.KubeCluster` (needs ``dask-kubernetes`` and a cluster).
``gateway``
    :class:`dask_gateway.GatewayCluster` on a Dask Gateway server (needs ``dask-gateway``).

All kinds accept ``scale`` (a fixed number of workers; jobs for jobqueue) or ``adapt``
(``{minimum, maximum}``). :func:`get_client` is the entry point; ``GEOTWIN_CLUSTER`` names a default
file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .config import ConfigError, _format_validation_error, load_yaml, model_from_yaml

JOBQUEUE_CLASSES = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
    "moab": "MoabCluster",
    "oar": "OARCluster",
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: int | None = Field(default=None, ge=0, description="fixed number of workers (jobs for jobqueue)")
    adapt: dict[Literal["minimum", "maximum"], int] | None = None

    @model_validator(mode="after")
    def _scale_or_adapt(self) -> _Spec:
        if self.scale is not None and self.adapt is not None:
            raise ValueError("give either 'scale' or 'adapt', not both")
        if self.adapt is not None and self.adapt.get("minimum", 0) > self.adapt.get("maximum", 1 << 30):
            raise ValueError(f"adapt: minimum must not exceed maximum, got {self.adapt}")
        return self


def _bytes(value: str | int | float | None) -> str | int | float | None:
    from dask.utils import parse_bytes

    if value is None or value == "auto" or (isinstance(value, float) and 0 < value <= 1):
        return value
    try:
        parse_bytes(value)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"expected a size such as '4GiB', a fraction in (0, 1] or 'auto', got {value!r}"
        ) from err
    return value


class LocalSpec(_Spec):
    """A :class:`distributed.LocalCluster` on this machine."""

    kind: Literal["local"] = "local"
    n_workers: int | None = Field(default=None, ge=1)
    threads_per_worker: int | None = Field(default=None, ge=1)
    memory_limit: str | int | float | None = "auto"
    processes: bool = True
    dashboard_address: str | None = ":8787"
    local_directory: str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _check_memory(cls, value: str | int | float | None) -> str | int | float | None:
        return _bytes(value)


class AddressSpec(_Spec):
    """An already running scheduler."""

    kind: Literal["address"]
    address: str = Field(pattern=r"^(tcp|tls|ucx|inproc|ws|wss)://.+")
    timeout: str = "30s"


class JobqueueSpec(_Spec):
    """Workers as batch jobs (dask-jobqueue); ``options`` passes any other keyword of the cluster class."""

    kind: Literal["jobqueue"]
    system: Literal["slurm", "pbs", "sge", "lsf", "htcondor", "moab", "oar"]
    cores: int = Field(ge=1)
    memory: str
    processes: int | None = Field(default=None, ge=1)
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("memory")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        _bytes(value)
        return value

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster class."""
        skip = {"kind", "system", "scale", "adapt", "options"}
        kw = {k: v for k, v in self.model_dump().items() if k not in skip and v not in (None, [], {})}
        kw.update(self.options)
        return kw


class KubernetesSpec(_Spec):
    """A :class:`dask_kubernetes.operator.KubeCluster`; ``options`` passes other keywords."""

    kind: Literal["kubernetes"]
    name: str = "geotwin"
    image: str = "ghcr.io/dask/dask:latest"
    namespace: str | None = None
    n_workers: int = Field(default=2, ge=0)
    resources: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


class GatewaySpec(_Spec):
    """A cluster from a Dask Gateway server; ``cluster_options`` are the server's cluster options."""

    kind: Literal["gateway"]
    address: str | None = None
    proxy_address: str | None = None
    auth: str | None = None
    cluster_options: dict[str, Any] = Field(default_factory=dict)
    shutdown_on_close: bool = True


SPECS: dict[str, type[_Spec]] = {
    "local": LocalSpec,
    "address": AddressSpec,
    "jobqueue": JobqueueSpec,
    "kubernetes": KubernetesSpec,
    "gateway": GatewaySpec,
}


def _spec_class(kind: Any, where: str) -> type[_Spec]:
    if kind not in SPECS:
        raise ConfigError(f"{where}: field 'kind': expected one of {', '.join(SPECS)}, got {kind!r}")
    return SPECS[kind]


def load_cluster_config(config: str | os.PathLike[str] | dict[str, Any] | _Spec | None = None) -> _Spec:
    """Validate a cluster config (a YAML path, a mapping or a spec).

    ``None`` means the file named by ``$GEOTWIN_CLUSTER``, else a default local cluster; a mapping
    without ``kind`` is a local cluster. A file must name its ``kind``.

    Raises
    ------
    pipelines.config.ConfigError
        Naming the file and the field, e.g. ``cluster/local.yaml: field 'n_worker': unknown field``.
    """
    if config is None:
        config = os.environ.get("GEOTWIN_CLUSTER") or {"kind": "local"}
    if isinstance(config, _Spec):
        return config
    if isinstance(config, dict):
        cls = _spec_class(config.get("kind", "local"), "<cluster config>")
        try:
            return cls.model_validate({"kind": "local", **config} if cls is LocalSpec else config)
        except ValidationError as err:
            raise ConfigError(_format_validation_error("<cluster config>", err)) from None
    path = Path(config)
    data = load_yaml(path)
    if "kind" not in data:
        raise ConfigError(f"{path}: field 'kind': required field is missing (one of {', '.join(SPECS)})")
    spec = model_from_yaml(_spec_class(data["kind"], str(path)), path)
    assert isinstance(spec, _Spec)
    return spec


def _need(module: str, package: str, kind: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"cluster kind {kind!r} needs the {package!r} package: pip install {package} (or 'geotwin[cluster]')"
        ) from err


def get_cluster(config: str | os.PathLike[str] | dict[str, Any] | _Spec | None = None) -> Any:
    """Create the cluster object a config describes (not scaled yet); ``None`` for ``kind: address``."""
    spec = load_cluster_config(config)
    if isinstance(spec, LocalSpec):
        from distributed import LocalCluster

        kw = spec.model_dump(exclude={"kind", "scale", "adapt"})
        return LocalCluster(**{k: v for k, v in kw.items() if v is not None or k == "dashboard_address"})
    if isinstance(spec, AddressSpec):
        return None
    if isinstance(spec, JobqueueSpec):
        module = _need("dask_jobqueue", "dask-jobqueue", "jobqueue")
        return getattr(module, JOBQUEUE_CLASSES[spec.system])(**spec.kwargs())
    if isinstance(spec, KubernetesSpec):
        operator = _need("dask_kubernetes.operator", "dask-kubernetes", "kubernetes")
        kw: dict[str, Any] = {"name": spec.name, "image": spec.image, "n_workers": spec.n_workers}
        kw.update(
            {
                k: v
                for k, v in (("namespace", spec.namespace), ("resources", spec.resources), ("env", spec.env))
                if v
            }
        )
        return operator.KubeCluster(**kw, **spec.options)
    gateway = _need("dask_gateway", "dask-gateway", "gateway")
    assert isinstance(spec, GatewaySpec)
    kw = {
        k: v
        for k, v in (("address", spec.address), ("proxy_address", spec.proxy_address), ("auth", spec.auth))
        if v
    }
    return gateway.GatewayCluster(**kw, shutdown_on_close=spec.shutdown_on_close, **spec.cluster_options)


def job_script(
    config: str | os.PathLike[str] | dict[str, Any] | JobqueueSpec, scheduler: str = "tcp://SCHEDULER:8786"
) -> str:
    """The batch script dask-jobqueue would submit for one worker job, built without any scheduler.

    Useful to check a ``jobqueue`` config on a laptop before using it on the HPC login node.
    """
    spec = load_cluster_config(config)
    if not isinstance(spec, JobqueueSpec):
        raise ConfigError(f"job_script needs a 'jobqueue' cluster config, got kind {spec.kind!r}")
    module = _need("dask_jobqueue", "dask-jobqueue", "jobqueue")
    job_cls = getattr(module, JOBQUEUE_CLASSES[spec.system]).job_cls
    kw = spec.kwargs()
    kw.pop("scheduler_options", None)
    return job_cls(scheduler=scheduler, name="geotwin-worker", **kw).job_script()


def get_client(config: str | os.PathLike[str] | dict[str, Any] | _Spec | None = None) -> Any:
    """Start (or connect to) the cluster a config describes, scale it, and return a :class:`distributed.Client`.

    Parameters
    ----------
    config
        A YAML path (``cluster/local.yaml``…), a mapping or a validated spec; ``None`` uses the file
        named by ``$GEOTWIN_CLUSTER`` or a default local cluster.

    Returns
    -------
    distributed.Client
        Close it with :func:`close_client` (also closes a cluster this function started), or use
        :func:`cluster_client` as a context manager.
    """
    from distributed import Client

    spec = load_cluster_config(config)
    if isinstance(spec, AddressSpec):
        return Client(spec.address, timeout=spec.timeout)
    cluster = get_cluster(spec)
    try:
        if spec.adapt is not None:
            cluster.adapt(**spec.adapt)
        elif spec.scale is not None:
            if isinstance(spec, JobqueueSpec):
                cluster.scale(jobs=spec.scale)
            else:
                cluster.scale(spec.scale)
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    client.geotwin_owns_cluster = True  # type: ignore[attr-defined]
    return client


def close_client(client: Any) -> None:
    """Close a client from :func:`get_client`, and the cluster if :func:`get_client` started it."""
    cluster = client.cluster if getattr(client, "geotwin_owns_cluster", False) else None
    client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def cluster_client(config: str | os.PathLike[str] | dict[str, Any] | _Spec | None = None) -> Iterator[Any]:
    """``with cluster_client("cluster/local.yaml") as client:`` — a client that shuts its cluster down."""
    client = get_client(config)
    try:
        yield client
    finally:
        close_client(client)
