"""The ``agentos_obs`` logger follows the stdlib convention for libraries: a NullHandler, so an
application that configured no logging sees none of our records on stderr (no
``logging.lastResort``), and one that did configure logging gets them through its handlers.

Each case runs a fresh interpreter: logging configuration is process-wide.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import agentos_obs

# An app whose exporter fails: agentos_obs swallows the failure (production mode), counts it
# and logs one warning to the `agentos_obs` logger.
APP = textwrap.dedent(
    """
    import json, sys
    {setup}
    import agentos_obs._internal.guard as guard
    from agentos_obs.tracing import SpanKind, Tracer

    def broken_exporter(trace):
        raise RuntimeError("backend rejected the trace")

    tracer = Tracer("app")
    tracer.add_exporter(broken_exporter)
    with tracer.start_span("job", SpanKind.CHAIN):
        pass
    tracer.shutdown()
    print(json.dumps(guard.failure_counts()))
    """
)


def run_app(setup: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AGENTOS_OBS_STRICT", "AGENTOS_OBS_AUTO_INSTRUMENT")
    }
    return subprocess.run(
        [sys.executable, "-c", APP.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_an_app_without_logging_config_sees_no_library_warning_on_stderr() -> None:
    result = run_app()
    assert result.returncode == 0, result.stderr
    # The failure happened and was counted...
    assert '"exporter:broken_exporter": 1' in result.stdout
    # ...but the app never configured logging, so nothing reaches its stderr.
    assert result.stderr == ""


def test_an_app_that_configures_logging_gets_the_warning() -> None:
    result = run_app(setup="import logging; logging.basicConfig(level=logging.WARNING)")
    assert result.returncode == 0, result.stderr
    assert '"exporter:broken_exporter": 1' in result.stdout
    assert "WARNING:agentos_obs:agentos_obs: exporter:broken_exporter failed" in result.stderr
    assert "backend rejected the trace" in result.stderr
    assert result.stderr.count("WARNING:agentos_obs") == 1  # logged once, then counted


def test_the_package_logger_has_exactly_one_null_handler_and_still_propagates() -> None:
    logger = logging.getLogger("agentos_obs")
    nulls = [h for h in logger.handlers if isinstance(h, logging.NullHandler)]
    assert len(nulls) == 1
    assert logger.propagate
    assert logger.level == logging.NOTSET  # the app's configuration decides the level
    assert agentos_obs.__name__ == logger.name
