"""`resolve.collect.fewer_collections`: the youngest generation's threshold raised while any
resolution runs, the previous thresholds back when the last one ends (errors included), and
collection left off when it was off."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from envspec.resolve.collect import YOUNG, fewer_collections


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_raised_within_restored_after_even_on_error() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_resolutions_restore_once_the_last_ends() -> None:
    inside, release = threading.Barrier(3), threading.Event()

    def resolve() -> None:
        with fewer_collections():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG, 10, 10)
    assert gc.get_threshold() == (YOUNG, 10, 10)  # two still running
    release.set()
    for thread in threads:
        thread.join()
    assert gc.get_threshold() == (700, 10, 10)


def test_a_threshold_already_higher_or_collection_off_is_left_alone() -> None:
    for setting in ((YOUNG * 2, 10, 10), (0, 10, 10)):
        gc.set_threshold(*setting)
        with fewer_collections():
            assert gc.get_threshold() == setting
        assert gc.get_threshold() == setting
