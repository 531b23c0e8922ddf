"""Helpers the tests share: synthetic conformed batches and the contexts they are checked in."""
