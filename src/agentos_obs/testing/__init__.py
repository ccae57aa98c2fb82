"""A testing kit for apps that use agentos-obs, and for its own suite: offline fake models
and a collecting exporter."""
