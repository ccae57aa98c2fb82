"""Correlate an existing app's stdlib logging with its traces: JSON lines with trace ids.

Run: python examples/logging_bridge.py
"""

from __future__ import annotations

import logging
import sys

import agentos_obs as obs
from agentos_obs import SpanKind
from agentos_obs.logs import JSONLinesHandler


def main() -> None:
    tracer = obs.get_tracer()
    # One call: every record of the "shop" logger becomes a JSON line with trace_id/span_id.
    obs.correlate_logging("shop", stream=sys.stdout, level=logging.INFO)
    log = logging.getLogger("shop")

    log.info("outside any span")
    with tracer.start_span("checkout-agent", SpanKind.AGENT) as span:
        log.info("planning checkout", extra={"cart_items": 3})
        with tracer.start_span("price-lookup", SpanKind.TOOL):
            log.warning("price cache miss")
    print(f"# the two lines above carry trace_id {span.trace_id}", file=sys.stderr)

    # The structured logger of the stack does the same for its own entries.
    stack = obs.get_stack()
    stack.logger.add_handler(JSONLinesHandler(sys.stdout))
    with tracer.start_span("refund-agent", SpanKind.AGENT):
        stack.logger.info("refund issued", order_id="A-17", amount_usd=12.5)


if __name__ == "__main__":
    main()
