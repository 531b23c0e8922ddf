"""The pipeline's overlap of one batch's store with the next's checks (hub.pipeline.ahead)
and what runs beside the last batch's store once nothing is left to check."""

from __future__ import annotations

import threading

import pytest

from hub.pipeline import ahead


def test_beside_last_runs_while_the_caller_holds_the_last_item():
    holding_last, beside_started = threading.Event(), threading.Event()
    seen: list[tuple[int, int]] = []

    def beside() -> None:
        beside_started.set()
        assert holding_last.wait(5), "ran before the caller was given the last item"

    for item, made in ahead([1, 2, 3], lambda i: i * 10, beside_last=beside):
        seen.append((item, made))
        if item == 3:
            holding_last.set()
            assert beside_started.wait(5), "did not run beside the last item"
        else:
            assert not beside_started.is_set()
    assert seen == [(1, 10), (2, 20), (3, 30)]


def test_beside_last_needs_an_item_before_the_last():
    called: list[str] = []
    assert list(ahead([7], lambda i: i, beside_last=lambda: called.append("x"))) == [(7, 7)]
    assert list(ahead([], lambda i: i, beside_last=lambda: called.append("x"))) == []
    assert called == []


def test_an_error_beside_the_last_item_comes_once_the_caller_is_done_with_it():
    def failing() -> None:
        raise RuntimeError("statistics failed")

    given: list[int] = []
    with pytest.raises(RuntimeError, match="statistics failed"):
        for item, _ in ahead([1, 2], lambda i: i, beside_last=failing):
            given.append(item)
    assert given == [1, 2]
