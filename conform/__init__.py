"""Conform: each platform's records mapped onto the unified model."""
