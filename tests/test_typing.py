"""What a user's ``mypy --strict`` sees of the public API (the package ships ``py.typed``).

mypy runs on a small app, with this checkout's ``src`` as the import path and our own modules
followed silently (their errors are ``make typecheck``'s business): only the app's lines are
reported, as in a project that depends on agentos-obs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentos_obs

pytest.importorskip("mypy")

SRC = Path(agentos_obs.__file__).resolve().parent.parent

APP = textwrap.dedent(
    """
    import agentos_obs as obs
    from agentos_obs import create_observability_stack

    tracer, metrics, logger, dashboard = create_observability_stack()
    reveal_type(tracer)
    reveal_type(metrics)
    reveal_type(logger)
    reveal_type(dashboard)

    stack = obs.configure()
    reveal_type(stack.tracer)
    reveal_type(stack[3])

    tracer.record_llm_call("gpt-4o", input_tokens=10, output_tokens=5)  # fine
    tracer.record_llm_call("gpt-4o", input_tokens="10", output_tokens=5)  # an error
    """
)


def mypy(app: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "app.py"
    path.write_text(app)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")  # not the project's config: a user's, with --strict
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            f"--config-file={config}",
            f"--cache-dir={tmp_path / 'cache'}",
            "--no-error-summary",
            "--hide-error-context",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MYPYPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=False,
    )


def test_the_stack_unpacks_to_its_four_types_and_mistyped_calls_are_errors(
    tmp_path: Path,
) -> None:
    result = mypy(APP, tmp_path)
    lines = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if ": " in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines == [
        'note: Revealed type is "agentos_obs.tracing._tracer.Tracer"',
        'note: Revealed type is "agentos_obs.metrics._registry.MetricsRegistry"',
        'note: Revealed type is "agentos_obs.logs.StructuredLogger"',
        'note: Revealed type is "agentos_obs.dashboard.ObservabilityDashboard"',
        'note: Revealed type is "agentos_obs.tracing._tracer.Tracer"',
        'note: Revealed type is "agentos_obs.dashboard.ObservabilityDashboard"',
        'error: Argument "input_tokens" to "record_llm_call" of "Tracer" has incompatible '
        'type "str"; expected "int"  [arg-type]',
    ], result.stdout
    wrong = next(i for i, line in enumerate(APP.splitlines(), 1) if 'input_tokens="10"' in line)
    assert f"app.py:{wrong}: error" in result.stdout


def test_a_correct_app_type_checks_clean(tmp_path: Path) -> None:
    app = "\n".join(
        line for line in APP.splitlines() if "reveal_type" not in line and '"10"' not in line
    )
    result = mypy(app, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
