"""Start-up hook of ``agentos-obs run``: Python imports ``sitecustomize`` at start, and
``agentos-obs run`` puts this directory first on the child's ``PYTHONPATH``.

With ``AGENTOS_OBS_AUTO_INSTRUMENT=1`` set (by ``agentos-obs run``), importing
``agentos_obs`` instruments LangChain and LlamaIndex globally; here we also send the default
stack's traces to the SQLite store named by ``AGENTOS_OBS_DB`` (the store flushes at exit).
The ``sitecustomize`` this one shadows, if any, runs first, as it would have. Nothing here may
stop the program from starting: failures are printed once and the program runs untraced.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _instrument() -> None:
    if os.environ.get("AGENTOS_OBS_AUTO_INSTRUMENT", "").strip().lower() not in (
        "1",
        "true",
        "yes",
        "on",
    ):
        return
    try:
        import agentos_obs

        agentos_obs.configure(store=True)
        agentos_obs.instrument()  # idempotent: the import above may have done it already
    except Exception as exc:
        print(
            f"agentos-obs run: instrumentation disabled: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )


def _chain_shadowed_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        print(f"agentos-obs run: error in {spec.origin}: {exc}", file=sys.stderr)


# The shadowed hook first: it may set up sys.path (e.g. a distribution's site directories).
_chain_shadowed_sitecustomize()
_instrument()
