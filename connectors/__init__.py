"""Connectors: one module per platform protocol, sharing `connectors.base`."""
