"""The ``agentos-obs`` command (also ``python -m agentos_obs``).

Sub-commands: ``demo``, ``ui`` (alias ``serve``), ``traces`` (list; ``traces show ID``),
``costs``, ``prices``, ``export`` and ``run -- cmd …``. Exit codes: 0 success, 1 a runtime
problem (missing or corrupt database, unknown trace, a child that failed to start), 2 bad
arguments (argparse's convention, reported in one line). A ``run`` returns the child's own
exit code. The store's errors (:class:`~agentos_obs.store.StoreError`) are mapped here.

The work of each command lives in the package-private modules of ``agentos_obs.cli``, imported only
when that command runs, so ``agentos-obs --help`` stays fast and needs no optional extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentos_obs.cli._budgets import add_budgets_parser
from agentos_obs.cli._common import (
    FORMATS_LIST,
    CLIError,
    OneLineParser,
    parse_count,
    parse_duration_ms,
    parse_limit,
    parse_non_negative,
    parse_offset,
    parse_port,
    parse_time,
    require_extra,
    terminal_safe,
)

__all__ = ["build_parser", "main"]

_VERSION_FALLBACK = "0+unknown"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("agentos-obs")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return _VERSION_FALLBACK


def _add_db(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=argparse.SUPPRESS if suppress else None,
        help="SQLite store to use (default: $AGENTOS_OBS_DB, else the per-user data directory)",
    )


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=parse_time,
        metavar="WHEN",
        help="only data from then on: 30m, 24h, 7d, 2w, or an ISO date/time (UTC if no zone)",
    )
    parser.add_argument("--until", type=parse_time, metavar="WHEN", help="only data before then")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="agentos-obs",
        description="Observability for LLM agent pipelines: traces, tokens, cost and latency.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run offline example pipelines, store their traces and print a summary",
        description="Runs a LangChain agent with tools and a retriever, a streaming call, an "
        "agent whose tool fails, and a LlamaIndex query engine — all offline with fake models "
        "that report real model names and token usage — traced into the SQLite store.",
    )
    _add_db(demo)
    demo.add_argument(
        "--fast", action="store_true", help="skip the simulated model and tool latency"
    )
    demo.add_argument("--format", choices=("table", "json"), default="table")

    for name in ("ui", "serve"):
        ui = sub.add_parser(
            name,
            help="web dashboard and /metrics (alias: serve)" if name == "ui" else "alias of ui",
            description="Serves the dashboard, its JSON API and /metrics, read-only on the store.",
        )
        _add_db(ui)
        ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        ui.add_argument("--port", type=parse_port, default=8686, help="port (0 = any free port)")
        ui.add_argument(
            "--auth-token",
            metavar="TOKEN",
            help="require this token on every request (default: $AGENTOS_OBS_UI_TOKEN); "
            "mandatory when --host is not a loopback address",
        )
        ui.add_argument(
            "--budget",
            action="append",
            default=[],
            metavar="USD[/PERIOD]",
            help="show spend against a budget, e.g. 10/day, 200/month, 50 (all time); repeatable",
        )
        ui.set_defaults(command="ui")

    traces = sub.add_parser("traces", help="list stored traces, or `traces show ID`")
    _add_db(traces)
    _add_window(traces)
    traces.add_argument("--status", choices=("ok", "error", "timeout", "cancelled"))
    traces.add_argument("--model", help="traces with an LLM call to this model")
    traces.add_argument("--agent", help="traces with this agent")
    traces.add_argument("--user", help="traces of this user.id")
    traces.add_argument("--min-cost", type=parse_non_negative, metavar="USD")
    traces.add_argument(
        "--min-duration",
        type=parse_duration_ms,
        metavar="DURATION",
        help="e.g. 500ms, 2s, or a number of milliseconds",
    )
    traces.add_argument("--search", metavar="TEXT", help="text in names, ids or captured content")
    traces.add_argument(
        "--limit", type=parse_limit, default=20, help="traces to list (1-10,000; default 20)"
    )
    traces.add_argument("--offset", type=parse_offset, default=0, help="traces to skip first")
    traces.add_argument("--format", choices=FORMATS_LIST, default="table")
    traces_sub = traces.add_subparsers(dest="traces_command", metavar="ACTION")
    show = traces_sub.add_parser("show", help="print one trace's span tree")
    show.add_argument("trace_id", metavar="ID", help="trace id (a unique prefix is enough)")
    _add_db(show, suppress=True)
    show.add_argument("--format", choices=("tree", "json"), default=argparse.SUPPRESS)

    costs = sub.add_parser("costs", help="cost and tokens by model, agent, user or day")
    _add_db(costs)
    _add_window(costs)
    costs.add_argument("--by", choices=("model", "agent", "user", "day"), default="model")
    costs.add_argument(
        "--as-model",
        metavar="MODEL",
        help="re-price every stored call as if it had used MODEL (its own token counts)",
    )
    costs.add_argument("--provider", help="provider of --as-model, when the name is ambiguous")
    costs.add_argument(
        "--overrides", metavar="FILE", help="price overrides file (JSON/TOML) for --as-model"
    )
    costs.add_argument("--format", choices=FORMATS_LIST, default="table")

    prices = sub.add_parser(
        "prices", help="the price the catalog (or your overrides) gives a model"
    )
    prices.add_argument("model", metavar="MODEL")
    prices.add_argument("--provider", help="e.g. openai, anthropic, aws, google")
    prices.add_argument(
        "--overrides",
        metavar="FILE",
        help="price overrides file (JSON/TOML) to apply, as configure(price_overrides=…) does",
    )
    prices.add_argument("--format", choices=("table", "json"), default="table")

    export = sub.add_parser("export", help="export stored traces as JSONL or to an OTLP endpoint")
    _add_db(export)
    _add_window(export)
    export.add_argument("--format", choices=("jsonl", "otlp"), default="jsonl")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="JSONL file to write (default: standard output)"
    )
    export.add_argument(
        "--endpoint",
        metavar="URL",
        help="OTLP/HTTP traces endpoint (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / "
        "$OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    export.add_argument("--limit", type=parse_count, help="at most this many traces")

    run = sub.add_parser(
        "run",
        help="run a program with auto-instrumentation: agentos-obs run -- python app.py",
        description="Runs COMMAND with LangChain and LlamaIndex instrumented globally in the "
        "child process (no code change); its traces go to the SQLite store.",
    )
    _add_db(run)
    run.add_argument("--service-name", help="service name of the traces (OTEL_SERVICE_NAME)")
    run.add_argument(
        "--capture-content",
        action="store_true",
        help="record prompts, messages and tool input/output (off by default)",
    )
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS…]")
    add_budgets_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except CLIError as exc:
        print(f"agentos-obs: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("agentos-obs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `agentos-obs traces | head`: the reader went away; not an error of ours.
        _silence_stdout()
        return 0


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The command, with the store's errors as CLI errors: bad query values are bad
    arguments (2), an unusable store a runtime problem (1)."""
    from agentos_obs.store import InvalidQuery, StoreError, StoreNotFound

    try:
        return _dispatch(parser, args)
    except InvalidQuery as exc:
        raise CLIError(str(exc), exit_code=2) from None
    except StoreNotFound as exc:
        raise CLIError(f"{exc}: run `agentos-obs demo` first, or pass --db PATH") from None
    except StoreError as exc:
        raise CLIError(str(exc)) from None


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    command = args.command
    if command == "demo":
        from agentos_obs.cli._demo import cmd_demo

        return cmd_demo(args)
    if command == "ui":
        require_extra("the dashboard", "ui", ("starlette", "uvicorn"))
        from agentos_obs.cli._ui import cmd_ui

        return cmd_ui(args)
    if command == "traces":
        from agentos_obs.cli._query import cmd_trace_show, cmd_traces

        if getattr(args, "traces_command", None) == "show":
            return cmd_trace_show(args)
        return cmd_traces(args)
    if command == "costs":
        from agentos_obs.cli._query import cmd_costs

        return cmd_costs(args)
    if command == "prices":
        from agentos_obs.cli._query import cmd_prices

        return cmd_prices(args)
    if command == "export":
        from agentos_obs.cli._export import cmd_export

        return cmd_export(args)
    if command == "budgets":
        from agentos_obs.cli._budgets import cmd_budgets

        return cmd_budgets(args)
    if command == "run":
        from agentos_obs.cli._export import cmd_run

        argv = list(args.argv)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            parser.error("run needs a command: agentos-obs run -- python app.py")
        args.argv = argv
        return cmd_run(args)
    parser.error(f"unknown command {command!r}")  # pragma: no cover - argparse rejects it first
    return 2  # pragma: no cover


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
