"""The reader registry and the base's shared behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.data.benchmarks.base import BenchmarkItem, BenchmarkReader, BenchmarkSample
from depthcore.data.benchmarks.registry import READERS, make_reader
from depthcore.errors import DataError, DepthcoreError


def test_registry_names_and_unknown_name(tmp_path):
    assert set(READERS) == {"nyu", "ibims", "tum", "eth3d", "folder"}
    for name, cls in READERS.items():
        assert cls.name == name and cls.min_depth < cls.max_depth
    with pytest.raises(DepthcoreError, match=r"unknown benchmark 'nyuv2'.*eth3d"):
        make_reader("nyuv2", tmp_path)
    with pytest.raises(DataError, match="benchmark folder not found"):
        make_reader("nyu", tmp_path / "absent")


class _OneFrame(BenchmarkReader):
    """A reader whose hook returns a given sample, to test the base's checks."""

    name = "fake"
    min_depth, max_depth = 0.5, 5.0

    def __init__(self, root, sample: BenchmarkSample, **kw):
        self.sample = sample
        super().__init__(root, **kw)

    def list_items(self):
        (self.root / "frame.bin").write_bytes(b"x")
        return [BenchmarkItem("f0", (self.root / "frame.bin",))]

    def load_item(self, item):
        return self.sample


def _sample(**changes) -> BenchmarkSample:
    depth_HW = np.array([[0.2, 1.0, np.nan], [np.inf, 5.0, 5.5]], np.float32)
    fields = dict(
        name="f0",
        rgb_HW3=np.zeros((2, 3, 3), np.uint8),
        depth_HW=depth_HW,
        valid_HW=np.array([[True, True, True], [True, False, True]]),
    )
    fields.update(changes)
    return BenchmarkSample(**fields)


def test_base_applies_range_finiteness_and_zeroes_invalid(tmp_path):
    sample = _OneFrame(tmp_path, _sample())[0]
    np.testing.assert_array_equal(sample.valid_HW, [[False, True, False], [False, False, False]])
    np.testing.assert_array_equal(sample.depth_HW, [[0, 1.0, 0], [0, 0, 0]])
    widened = _OneFrame(tmp_path, _sample(), min_depth=0.1, max_depth=6.0)[0]
    np.testing.assert_array_equal(widened.valid_HW, [[True, True, False], [False, False, True]])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rgb_HW3": np.zeros((2, 3, 3), np.float32)}, "rgb must be HxWx3 uint8"),
        ({"depth_HW": np.ones((3, 2), np.float32)}, r"depth shape \(3, 2\) does not match"),
        ({"valid_HW": np.ones((2, 2), bool)}, "valid mask shape"),
        ({"intrinsics_33": np.eye(4)}, "intrinsics must be 3x3"),
        ({"plane_masks": np.ones((1, 2, 3), bool)}, "must come together"),
        (
            {"plane_masks": np.ones((2, 2, 3), bool), "plane_normals": np.ones((1, 3))},
            "do not match",
        ),
    ],
)
def test_base_refuses_malformed_samples_naming_the_file(tmp_path, changes, message):
    with pytest.raises(DataError, match=rf"frame\.bin: fake frame f0: .*{message}"):
        _OneFrame(tmp_path, _sample(**changes))[0]
