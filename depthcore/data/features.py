"""Reading the frozen-feature cache that the features stage writes.

``features/<split>.h5`` holds, for N frames at model resolution S:
``key`` (N,) str, ``fD`` (N, Cvae, h, w) float32, ``prefix`` (N, L, Cvae) float32,
``rgb`` (N, 3, S, S) uint8, ``target`` (N, S, S) float32 in [-1, 1],
``depth`` (N, S, S) float32 metres (0 where invalid), ``mask`` (N, S, S) bool;
attrs ``space``, ``image_size``, ``patch_nums``, ``cvae``, ``tokenizer_sha256``, ``split``.
Training, the scales stage and the studies read it through :class:`FeatureDataset`;
:mod:`depthcore.training.feature_cache` writes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from depthcore.errors import DataError

CACHE_FIELDS: tuple[str, ...] = ("fD", "prefix", "rgb", "target", "depth", "mask")

_ITEM_NAMES = {
    "fD": "fD_Chw",
    "prefix": "prefix_LC",
    "rgb": "rgb_3SS",
    "target": "target_SS",
    "depth": "depth_SS",
    "mask": "mask_SS",
}


#: Fields whose arrays fit in this many bytes are read into memory once: a batch of 8
#: random frames from the 64-frame HDF5 chunks costs ~12 ms, as much as 8 % of a tiny
#: training step; the d16 profile's 256 px caches stay on disk.
PRELOAD_MAX_BYTES = 1 << 30


class FeatureDataset(torch.utils.data.Dataset):
    """Frames of one cache file as dicts of tensors (``fD_Chw``, ``prefix_LC``, ...).

    The HDF5 file is opened lazily in each process (h5py handles must not
    cross a DataLoader fork); the attrs are read once up front. When ``fields`` fit
    in ``preload_max_bytes`` they are read whole on first use, with identical batches.
    """

    def __init__(
        self,
        path: str | Path,
        fields: Sequence[str] = ("fD", "prefix"),
        preload_max_bytes: int = PRELOAD_MAX_BYTES,
    ) -> None:
        self.path = Path(path)
        unknown = sorted(set(fields) - set(CACHE_FIELDS))
        if unknown:
            raise ValueError(f"unknown cache fields {unknown} (known: {list(CACHE_FIELDS)})")
        self.fields = tuple(fields)
        if not self.path.is_file():
            raise DataError(f"{self.path}: feature cache not found (run the features stage)")
        try:
            with h5py.File(self.path, "r") as h5:
                missing = [k for k in (*CACHE_FIELDS, "key") if k not in h5]
                if missing:
                    raise DataError(f"{self.path}: feature cache lacks datasets {missing}")
                self.attrs = {k: _plain(v) for k, v in h5.attrs.items()}
                self.keys = [k.decode() if isinstance(k, bytes) else k for k in h5["key"][:]]
                nbytes = sum(h5[name].size * h5[name].dtype.itemsize for name in self.fields)
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 feature cache: {exc}") from exc
        self.preload = nbytes <= preload_max_bytes
        self._h5: h5py.File | None = None
        self._arrays: dict[str, np.ndarray] | None = None
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.keys)

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():  # a forked worker opens its own
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.get_batch([i], squeeze=True)

    def get_batch(self, indices: Sequence[int], squeeze: bool = False) -> dict[str, torch.Tensor]:
        """Several frames in one read (sorted for h5py, then back in the asked order)."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.preload:
            if self._arrays is None:
                self._arrays = {name: self._file()[name][()] for name in self.fields}
            arrays = {name: a[idx] for name, a in self._arrays.items()}
        else:
            uniq, inverse = np.unique(idx, return_inverse=True)
            h5 = self._file()
            arrays = {name: h5[name][uniq.tolist()][inverse] for name in self.fields}
        return {
            _ITEM_NAMES[name]: torch.from_numpy(arr[0] if squeeze else arr)
            for name, arr in arrays.items()
        }

    def check_compatible(
        self,
        vae: Any | None,
        image_size: int,
        space: str | None = None,
        tokenizer_sha256: str = "",
    ) -> None:
        """Refuse a cache built by another tokenizer (layout or file), resolution or space.

        ``vae=None``: a model that reads only the frames (the regression baseline).
        """
        want: dict[str, Any] = {"image_size": image_size}
        if vae is not None:
            want.update(patch_nums=list(vae.v_patch_nums), cvae=int(vae.Cvae))
        if space is not None:
            want["space"] = space
        if tokenizer_sha256:
            want["tokenizer_sha256"] = tokenizer_sha256
        for key, value in want.items():
            if self.attrs.get(key) != value:
                raise DataError(
                    f"{self.path}: cache {key}={self.attrs.get(key)!r} but the model needs "
                    f"{value!r}; rebuild the feature cache"
                )

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Batched read used by DataLoader (one h5py read per field, not per frame)."""
        return self.get_batch(indices)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"] = state["_arrays"] = None
        return state


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
