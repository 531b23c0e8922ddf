"""The bottom layer: what every part of the hub may use and that imports nothing of it."""
