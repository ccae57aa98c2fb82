"""Framework integrations. Each imports its framework only inside itself; a missing
framework raises ImportError naming the pip extra to install.

Usage settings shared by all of them (estimation of missing usage, asking OpenAI-compatible
streams for theirs) are :class:`UsageOptions`: see :func:`set_usage_options`."""

from agentos_obs.integrations._options import UsageOptions, set_usage_options, usage_options

__all__ = ["UsageOptions", "set_usage_options", "usage_options"]
