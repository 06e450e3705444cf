"""Host batches: fixed shapes, every example exactly once, seeded order; prefetching."""

import gc
import threading
import time

import numpy as np
import pytest

from shortrec_jax.data.batching import Prefetcher, batches, epoch_rng, num_batches, prefetch


def _arrays(n: int) -> dict[str, np.ndarray]:
    return {
        "id": np.arange(n, dtype=np.int64),
        "cat": np.arange(3 * n, dtype=np.int32).reshape(n, 3),
        "num": np.linspace(0, 1, 2 * n, dtype=np.float32).reshape(n, 2, 1),
    }


@pytest.mark.parametrize("num_shards", [1, 8])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_example_exactly_once(num_shards, shuffle):
    n, batch_size = 53, 16
    arrays = _arrays(n)
    out = list(batches(arrays, batch_size, num_shards=num_shards, shuffle=shuffle, seed=0))
    assert len(out) == num_batches(n, batch_size) == 4
    for b in out:
        assert b.keys() == {"id", "cat", "num", "weight"}
        assert b["id"].shape == (16,) and b["cat"].shape == (16, 3) and b["num"].shape == (16, 2, 1)
        assert b["cat"].dtype == np.int32 and b["weight"].dtype == np.float32
        np.testing.assert_array_equal(b["cat"], arrays["cat"][b["id"]])  # rows stay whole
    ids = np.concatenate([b["id"] for b in out])
    weights = np.concatenate([b["weight"] for b in out])
    np.testing.assert_array_equal(np.sort(ids[weights > 0]), np.arange(n))
    assert weights.sum() == n
    # 64 - 53 = 11 padding rows at the end of the last batch, copies of its first row.
    last = out[-1]
    np.testing.assert_array_equal(last["weight"], [1.0] * 5 + [0.0] * 11)
    assert np.all(last["id"][5:] == last["id"][0])


def test_order_depends_on_seed_and_epoch_only():
    arrays = _arrays(100)

    def order(seed, epoch):
        return np.concatenate(
            [b["id"] for b in batches(arrays, 10, shuffle=True, seed=seed, epoch=epoch)]
        )

    np.testing.assert_array_equal(order(1, 0), order(1, 0))
    assert not np.array_equal(order(1, 0), order(1, 1))
    assert not np.array_equal(order(1, 0), order(2, 0))
    unshuffled = np.concatenate([b["id"] for b in batches(arrays, 10, shuffle=False)])
    np.testing.assert_array_equal(unshuffled, np.arange(100))


def test_existing_weights_are_kept_and_padding_gets_zero():
    arrays = {"x": np.arange(5), "weight": np.array([0.5, 1, 2, 1, 3], dtype=np.float64)}
    out = list(batches(arrays, 4, shuffle=False))
    np.testing.assert_array_equal(out[0]["weight"], [0.5, 1, 2, 1])
    np.testing.assert_array_equal(out[1]["weight"], [3, 0, 0, 0])
    assert out[1]["weight"].dtype == np.float32
    assert arrays["weight"].tolist() == [0.5, 1, 2, 1, 3]  # the input is not modified


def test_drop_remainder():
    out = list(batches(_arrays(53), 16, shuffle=True, seed=3, drop_remainder=True))
    assert len(out) == num_batches(53, 16, drop_remainder=True) == 3
    assert all(b["weight"].sum() == 16 for b in out)
    assert num_batches(48, 16) == 3 and num_batches(0, 16) == 0
    assert list(batches(_arrays(0), 8, shuffle=False)) == []


def test_bad_arguments_are_named():
    with pytest.raises(
        ValueError, match="batch_size=12 must be a positive multiple of num_shards=8"
    ):
        batches(_arrays(10), 12, num_shards=8, shuffle=False)
    with pytest.raises(ValueError, match="leading dimension"):
        batches({"a": np.zeros(3), "b": np.zeros(4)}, 2, shuffle=False)
    with pytest.raises(ValueError, match="explicit seed"):
        batches(_arrays(10), 2, shuffle=True)
    with pytest.raises(ValueError, match=">= 0"):
        epoch_rng(-1, 0, 0)


def test_prefetch_yields_everything_in_order():
    out = list(prefetch(batches(_arrays(50), 8, shuffle=True, seed=0), size=2))
    ref = list(batches(_arrays(50), 8, shuffle=True, seed=0))
    assert len(out) == len(ref)
    for a, b in zip(out, ref, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_prefetch_raises_the_producers_error_in_place():
    def items():
        yield 1
        yield 2
        raise KeyError("bad row 3")

    it = prefetch(items())
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(KeyError, match="bad row 3"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def _wait_until(condition, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_prefetch_is_bounded_and_stops_cleanly():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    with prefetch(items(), size=3) as it:
        assert next(it) == 0
        # The queue holds 3, the producer may hold one more it cannot put yet.
        assert _wait_until(lambda: len(produced) == 5)
        time.sleep(0.1)
        assert len(produced) == 5
        thread = it._thread
    assert not thread.is_alive()  # leaving the block stopped the producer
    assert len(produced) < 1000


def test_abandoned_prefetcher_stops_its_thread():
    before = threading.active_count()
    it = Prefetcher(iter(range(1000)), size=1)
    next(it)
    thread = it._thread
    del it
    gc.collect()
    assert _wait_until(lambda: not thread.is_alive())
    assert threading.active_count() <= before
