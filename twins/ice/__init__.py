"""The ice drift twin: sea-ice free drift, icebergs (OpenBerg) and passive drift on forcing cubes.

Public API: :func:`simulate` (trajectory cube), :func:`presence_probability` (gridded probability of
ice presence), :func:`twins.ice.hazard.ice_hazard` (the platform/route ice-hazard forecast) and
:func:`twins.ice.run.run_config` (the CLI entry).
"""

from __future__ import annotations

from .simulate import presence_probability, simulate

__all__ = ["presence_probability", "simulate"]
