"""City carbon-footprint twin: bottom-up inventory, Gaussian-plume transport and Bayesian inversion.

Public and stable: :func:`briggs_sigmas` and :func:`gaussian_plume` (see :mod:`twins.carbon.plume`);
the CLI runner is :func:`twins.carbon.run.run_config`.
"""

from .plume import briggs_sigmas, gaussian_plume

__all__ = ["briggs_sigmas", "gaussian_plume"]
