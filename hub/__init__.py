"""The governance data hub: configuration, pipeline and command line."""
