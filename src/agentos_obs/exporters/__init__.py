"""Trace exporters: OTLP (extra ``otel``), JSON lines, console."""
