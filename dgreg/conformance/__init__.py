"""The conformance suite: spec files, their cases, and the machinery that runs them.

- ``specs/ops/*.toml`` declare each operation family (dtypes, layouts, recipes, alignment
  rules, tolerance); :mod:`.opfile` loads them strictly (through :mod:`.strict_toml`) and
  checks them against :mod:`dgreg.spec`. :mod:`.specfile` is the loaders' public surface.
- ``specs/conformance/*.toml`` declare cases, loaded by :mod:`.casefile`; :mod:`.cases`
  expands them into instances with stable ids, builds inputs as DeepGEMM's tests do, runs
  them through the public API pinned to one plugin and checks the result against the
  float64 torch reference.
- :mod:`.pytest_plugin` collects the TOML files and expands each case over every plugin that
  claims it; :mod:`.runner` (``dgreg conformance``) runs that and prints coverage.

Importing this package is cheap: torch loads only with :mod:`.cases`.
"""

from __future__ import annotations

from dgreg.conformance.specfile import Case, OpSpec, load_case_file, load_ops

__all__ = ["Case", "OpSpec", "load_case_file", "load_ops"]
