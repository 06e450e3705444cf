"""Per-user item sequences for BERT4Rec and SASRec: training windows, targets, evaluation inputs.

Sequence ids follow `shortrec_jax.vocabulary.ItemVocabulary`: item index + 1, so that 0 is
padding (`PAD_ID`); the mask token is num_items + 1, and a model embeds num_items + 2 ids.
Sequences are left-padded: the most recent item is always in the last column, where
`eval_inputs` puts the mask token the model predicts.

Training windows cover the whole history with a stride (`SequenceData.train_windows`), so
every training interaction is a target somewhere; with a jitter the earlier windows' ends
are drawn afresh each epoch, so every item, not every stride-th, ends a window over the epochs.

- BERT4Rec (Sun et al. 2019, Sec. 3.6): each epoch, `cloze_mask` hides a fresh random
  fraction of each window's items and the model recovers them; with `last_item_prob` it also
  ADDS that share of windows again with only their last item hidden, as the paper does so that
  training also sees the test task (predict the item after the history); with
  `mask_last_item` every window's last item is hidden in its own row instead.
- SASRec (Kang and McAuley 2018): `next_item_targets` labels every position of a window with
  the item after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from shortrec_jax.data.batching import epoch_rng
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import Split, concat
from shortrec_jax.vocabulary import PAD_ID, ItemVocabulary

# `epoch_rng` streams of the cloze masks and of the window jitter (the batch order uses 0).
CLOZE_STREAM = 1
WINDOW_STREAM = 2
# BERT's replacement of the chosen positions: 80% mask token, 10% a random item, 10% unchanged.
BERT_MASK_SHARE = 0.8
BERT_RANDOM_SHARE = 0.1


def _windows(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Left-padded windows `values[max(start, end - width):end]`.

    Args:
      values: [T] int32 sequence ids.
      starts, ends: [S] int64 bounds in `values`, start <= end.
      width: the window length W.

    Returns:
      [S, W] int32, PAD_ID where the window reaches before `start`.
    """
    pos = ends[:, None] - width + np.arange(width)[None, :]  # [S, W]
    real = pos >= starts[:, None]
    if values.size == 0:
        return np.zeros(pos.shape, dtype=np.int32)
    return np.where(real, values[np.clip(pos, 0, values.size - 1)], PAD_ID).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class SequenceData:
    """Each user's items in time order, as sequence ids, in CSR layout.

    Attributes:
      num_items: I; sequence ids of items are 1..I.
      values: [T] int32, the sequence ids of user 0's interactions, then user 1's, ...; each
        user's by timestamp, ties by the order of the interactions in the data set.
      offsets: [U + 1] int64, user u's sequence is `values[offsets[u]:offsets[u + 1]]`.
    """

    num_items: int
    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_dataset(cls, ds: Dataset) -> SequenceData:
        """The sequences of every user of `ds` (empty for a user without interactions)."""
        n = ds.num_interactions
        order = np.lexsort((np.arange(n), ds.timestamps, ds.users))
        offsets = np.zeros(ds.num_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(ds.users, minlength=ds.num_users), out=offsets[1:])
        return cls(ds.num_items, ItemVocabulary(ds.num_items).ids(ds.items[order]), offsets)

    @property
    def num_users(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def vocabulary(self) -> ItemVocabulary:
        return ItemVocabulary(self.num_items)

    @property
    def mask_id(self) -> int:
        """The mask token, num_items + 1."""
        return self.vocabulary.mask_id

    @property
    def vocab_size(self) -> int:
        """Ids the model embeds: padding, the items and the mask token (num_items + 2)."""
        return self.vocabulary.size

    def lengths(self) -> np.ndarray:
        """[U] int64, each user's number of interactions."""
        return np.diff(self.offsets)

    def history(self, user: int) -> np.ndarray:
        """[n] int32, the sequence ids of one user, oldest first."""
        return self.values[self.offsets[user] : self.offsets[user + 1]]

    def train_windows(
        self,
        max_len: int,
        *,
        stride: int | None = None,
        min_len: int = 1,
        jitter_rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Left-padded training sequences.

        Without `stride`, one sequence per user: the last `max_len` items. With `stride`, a
        history longer than `max_len` also gives the windows ending `stride`, 2 * `stride`, ...
        items earlier, down to the first window that starts at the user's first item (the
        sliding windows of the BERT4Rec code), so the early part of long histories is trained
        on too. A user with n items gets 1 + ceil(max(0, n - max_len) / stride) windows.

        With `jitter_rng` (e.g. `window_rng(seed, epoch)`), every window but each user's latest
        ends a uniform 0..J-1 items LATER, J = min(stride, max_len - stride + 1), drawn per
        window (the earliest one never so far that it leaves the user's first item out). With
        J = stride (stride <= (max_len + 1) / 2, as the shipped configs) every item after a
        history's first max_len + stride - 1 ends a window over the epochs, not only every
        stride-th, and a window's end is where `cloze_mask(mask_last_item=True)` asks the
        test's question. The latest window stays, so the most recent items are in a window
        every epoch, and a window never moves past the next one's start: the windows cover
        the history as the unmoved ones do.

        Args:
          max_len: L, the sequence length of the model.
          stride: the step between windows, or None for one window per user.
          min_len: users with fewer items give no sequence.
          jitter_rng: moves the earlier windows' ends as above; needs `stride`.

        Returns:
          [S, L] int32, user by user, each user's windows oldest first; the same S with or
          without the jitter.
        """
        if max_len < 1 or min_len < 1 or (stride is not None and stride < 1):
            raise ValueError(
                f"max_len, min_len and stride must be >= 1, got {max_len}, {min_len}, {stride}"
            )
        if jitter_rng is not None and stride is None:
            raise ValueError("jitter_rng needs a stride: one window per user has none to move")
        lengths = self.lengths()
        users = np.flatnonzero(lengths >= min_len)
        n = lengths[users]
        # Windows per user: 1, or 1 + ceil(max(0, n - max_len) / stride).
        count = np.ones_like(n) if stride is None else 1 - (-np.maximum(n - max_len, 0) // stride)
        owner = np.repeat(users, count)
        index = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        back = np.repeat(count, count) - 1 - index  # windows between this one and the latest
        starts = self.offsets[owner]
        ends = self.offsets[owner + 1] - back * (stride or 0)
        if jitter_rng is not None:
            spread = window_jitter_spread(max_len, stride)
            shift = np.where(back > 0, jitter_rng.integers(0, spread, size=ends.size), 0)
            # The earliest window keeps the user's first item: it ends at most L items after it.
            earliest = back == np.repeat(count, count) - 1
            shift = np.where(earliest, np.minimum(shift, starts + max_len - ends), shift)
            ends = ends + shift
        return _windows(self.values, starts, ends, max_len)

    def eval_inputs(self, users: np.ndarray, max_len: int) -> np.ndarray:
        """Each user's history with the mask token appended (see the module function).

        Args:
          users: [B] int user indices; -1 or out of range is a user with no history.
          max_len: L.

        Returns:
          [B, L] int32: the last L - 1 items, then `mask_id` in column L - 1, left-padded.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        users = np.asarray(users)
        known = (users >= 0) & (users < self.num_users)
        u = np.where(known, users, 0)
        starts = np.where(known, self.offsets[u], 0)
        ends = np.where(known, self.offsets[u + 1], 0)
        return _with_mask(_windows(self.values, starts, ends, max_len - 1), self.mask_id)


def _with_mask(history: np.ndarray, mask_id: int) -> np.ndarray:
    """[B, L - 1] left-padded histories -> [B, L] with the mask token in the last column."""
    mask = np.full((history.shape[0], 1), mask_id, dtype=np.int32)
    return np.concatenate([history, mask], axis=1)


def eval_inputs(histories: Sequence[Sequence[int]], max_len: int, mask_id: int) -> np.ndarray:
    """Model inputs that ask for the next item after each history.

    Args:
      histories: B sequences of sequence ids (item index + 1), oldest first; may be empty.
      max_len: L >= 1; a history is truncated to its last L - 1 items.
      mask_id: the mask token, num_items + 1.

    Returns:
      [B, L] int32, left-padded, the mask token in column L - 1.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    ends = np.cumsum(lengths)
    flat = [np.asarray(h, dtype=np.int32).ravel() for h in histories]
    values = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int32)
    return _with_mask(_windows(values, ends - lengths, ends, max_len - 1), mask_id)


def history_as_of(split: Split, part: str) -> SequenceData:
    """The sequences a model may use when predicting a part of a split.

    Args:
      split: the split.
      part: "valid" (histories from train) or "test" (from train + valid when the split has a
        validation part, else from train).
    """
    if part == "valid":
        if split.valid is None:
            raise ValueError("the split has no validation part")
        return SequenceData.from_dataset(split.train)
    if part == "test":
        parts = [split.train] if split.valid is None else [split.train, split.valid]
        return SequenceData.from_dataset(concat(parts))
    raise ValueError(f"part must be 'valid' or 'test', got {part!r}")


def cloze_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's cloze masks: fresh each epoch, reproducible from the seed."""
    return epoch_rng(seed, epoch, CLOZE_STREAM)


def window_jitter_spread(max_len: int, stride: int) -> int:
    """J, the number of ends a jittered window can take (`SequenceData.train_windows`): a
    window moves by less than the stride, and by at most max_len - stride so that it never
    passes the next window's start; 1 = the jitter moves nothing."""
    return max(1, min(stride, max_len - stride + 1))


def window_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's window jitter (`SequenceData.train_windows`)."""
    return epoch_rng(seed, epoch, WINDOW_STREAM)


def num_last_item_rows(seqs: np.ndarray, last_item_prob: float) -> int:
    """Last-item rows `cloze_mask` adds to `seqs` ([S, L]): a fixed share of the non-empty ones."""
    return round(last_item_prob * int(np.count_nonzero((seqs != PAD_ID).any(axis=1))))


def cloze_mask(
    seqs: np.ndarray,
    *,
    mask_prob: float,
    mask_id: int,
    rng: np.random.Generator,
    last_item_prob: float = 0.0,
    bert_replace: bool = False,
    max_predictions: int | None = None,
    mask_last_item: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chooses the positions to predict (the cloze task of BERT4Rec, Eq. 6 of the study).

    Each non-padding position is chosen independently with probability `mask_prob`; a
    non-empty sequence with none chosen gets one position chosen uniformly, so every
    sequence contributes to the loss. With `mask_last_item`, every non-empty sequence's last
    non-padding position is chosen as well, in the same row as its random masks (the test
    asks for the item after a history, and this trains on that at no extra rows). A sequence
    with more than `max_predictions` chosen positions keeps a uniform random subset of that
    many, always with its last item when `mask_last_item` chose it (the loss scores at most
    that many per sequence; nothing is dropped silently there). Then `num_last_item_rows` of the
    non-empty sequences, drawn at random, are appended once more with only their last
    non-padding position chosen (the paper's last-item samples, added to the random masks
    rather than replacing them). Chosen positions show the mask token, or with `bert_replace`
    BERT's 80/10/10 (mask token / a random item / the true item; last-item rows always show
    the mask token).

    Args:
      seqs: [S, L] int32 sequence ids, PAD_ID = 0 for padding.
      mask_prob: in (0, 1].
      mask_id: the mask token, num_items + 1 (random items are drawn from 1..num_items).
      rng: e.g. `cloze_rng(seed, epoch)`.
      last_item_prob: in [0, 1], the share of sequences added as last-item rows.
      bert_replace: use BERT's 80/10/10 replacement instead of always the mask token.
      max_predictions: at most this many chosen positions per sequence (None = no cap).
      mask_last_item: also choose every non-empty sequence's last item, in its own row.

    Returns:
      (inputs [S + R, L] int32: the sequences with the chosen positions replaced,
       labels [S + R, L] int32: the original id at chosen positions, 0 elsewhere,
       weights [S + R, L] float32: 1.0 at chosen positions, 0.0 elsewhere), with
      R = `num_last_item_rows(seqs, last_item_prob)` last-item rows after the S sequences.
    """
    seqs = np.asarray(seqs)
    if seqs.ndim != 2:
        raise ValueError(f"seqs must be [S, L], got shape {seqs.shape}")
    if not 0 < mask_prob <= 1 or not 0 <= last_item_prob <= 1:
        raise ValueError(
            f"mask_prob must be in (0, 1] and last_item_prob in [0, 1], got {mask_prob} and "
            f"{last_item_prob}"
        )
    if max_predictions is not None and max_predictions < 1:
        raise ValueError(f"max_predictions must be >= 1 or None, got {max_predictions}")
    real = seqs != PAD_ID
    nonempty = real.any(axis=1)
    chosen = real & (rng.random(seqs.shape) < mask_prob)
    missing = np.flatnonzero(nonempty & ~chosen.any(axis=1))
    # A uniform real position of each row that drew none: the argmax of uniform keys.
    keys = np.where(real[missing], rng.random((missing.size, seqs.shape[1])), -1.0)
    chosen[missing, np.argmax(keys, axis=1)] = True
    last_pos = seqs.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)  # [S]
    if mask_last_item:
        rows = np.flatnonzero(nonempty)
        chosen[rows, last_pos[rows]] = True
    if max_predictions is not None:
        over = np.flatnonzero(chosen.sum(axis=1) > max_predictions)
        # The max_predictions largest uniform keys among a row's chosen positions: a uniform
        # subset of that size (the last item's key, above any uniform one, keeps it).
        keys = np.where(chosen[over], rng.random((over.size, seqs.shape[1])), -1.0)
        if mask_last_item:
            keys[np.arange(over.size), last_pos[over]] = 2.0
        keep = np.argsort(-keys, axis=1)[:, :max_predictions]
        chosen[over] = False
        chosen[over[:, None], keep] = True

    inputs = np.where(chosen, mask_id, seqs).astype(np.int32)
    if bert_replace:
        draw = rng.random(seqs.shape)
        random_items = rng.integers(1, mask_id, size=seqs.shape, dtype=np.int32)
        to_random = (
            chosen & (draw >= BERT_MASK_SHARE) & (draw < BERT_MASK_SHARE + BERT_RANDOM_SHARE)
        )
        keep = chosen & (draw >= BERT_MASK_SHARE + BERT_RANDOM_SHARE)
        inputs = np.where(to_random, random_items, np.where(keep, seqs, inputs)).astype(np.int32)

    count = num_last_item_rows(seqs, last_item_prob)
    last_rows = np.sort(rng.choice(np.flatnonzero(nonempty), size=count, replace=False))
    last_seqs = seqs[last_rows]
    last_chosen = np.zeros(last_seqs.shape, dtype=bool)
    last_chosen[np.arange(count), last_pos[last_rows]] = True
    chosen = np.concatenate([chosen, last_chosen])
    all_seqs = np.concatenate([seqs, last_seqs])
    inputs = np.concatenate([inputs, np.where(last_chosen, mask_id, last_seqs).astype(np.int32)])
    labels = np.where(chosen, all_seqs, PAD_ID).astype(np.int32)
    return inputs, labels, chosen.astype(np.float32)


def next_item_targets(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SASRec's training examples: every position predicts the item after it.

    Args:
      windows: [S, L + 1] int32 left-padded sequence ids (`train_windows(L + 1, ...)`).

    Returns:
      (inputs [S, L] int32: the first L columns,
       labels [S, L] int32: the item after each input position, 0 where not scored,
       weights [S, L] float32: 1.0 where both the position and its next item are real).
    """
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"windows must be [S, L + 1] with L >= 1, got shape {windows.shape}")
    inputs, labels = windows[:, :-1], windows[:, 1:]
    scored = (inputs != PAD_ID) & (labels != PAD_ID)
    return (
        inputs.astype(np.int32),
        np.where(scored, labels, PAD_ID).astype(np.int32),
        scored.astype(np.float32),
    )
