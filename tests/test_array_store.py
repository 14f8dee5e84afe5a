"""`jaxal._array_store`: resumable chunks and atomically written .npy folders."""

import os

import numpy as np
import pytest

from jaxal import _array_store as array_store


def test_chunks_are_saved_whole_found_done_and_read_back(tmp_path):
  store = array_store.ChunkStore(str(tmp_path / "parts"), lambda i: f"c{i:03d}.npz")
  assert not store.done(0) and not os.path.exists(store.folder)
  store.save(3, ok=np.array([True, False]), features=np.eye(2, dtype=np.float32))
  assert store.done(3) and not store.done(0)
  assert store.path(3) == str(tmp_path / "parts" / "c003.npz")
  assert os.listdir(store.folder) == ["c003.npz"]  # no temporary left
  got = store.load(3)
  assert set(got) == {"ok", "features"}
  np.testing.assert_array_equal(got["features"], np.eye(2))
  assert set(store.load(3, "ok")) == {"ok"}
  store.remove()
  assert not os.path.exists(store.folder)
  store.remove()  # nothing to remove


def test_an_npy_folder_appears_whole_with_the_arrays_written(tmp_path):
  path = str(tmp_path / "embedding")
  os.makedirs(path + ".tmp")  # a killed writer's
  with open(os.path.join(path + ".tmp", "stale.npy"), "w") as f:
    f.write("torn")
  with array_store.npy_folder(path) as folder:
    assert not os.path.exists(path)
    a = folder.create("features", np.float32, (3, 2))
    a[:] = np.arange(6).reshape(3, 2)
    folder.create("index", np.int64, (3,))[:] = [0, 2, 5]
  assert sorted(os.listdir(path)) == ["features.npy", "index.npy"]
  assert not os.path.exists(path + ".tmp")
  np.testing.assert_array_equal(np.load(os.path.join(path, "features.npy")),
                                np.arange(6, dtype=np.float32).reshape(3, 2))
  np.testing.assert_array_equal(np.load(os.path.join(path, "index.npy")), [0, 2, 5])
  with open(os.path.join(path, "index.npy"), "rb") as f:  # np.save's bytes
    raw = f.read()
  np.save(str(tmp_path / "want.npy"), np.array([0, 2, 5], np.int64))
  assert raw == (tmp_path / "want.npy").read_bytes()


def test_a_failed_npy_folder_leaves_nothing(tmp_path):
  path = str(tmp_path / "embedding")
  with pytest.raises(ValueError, match="bad row"):
    with array_store.npy_folder(path) as folder:
      folder.create("features", np.float32, (2, 2))[:] = 1
      raise ValueError("bad row")
  assert os.listdir(tmp_path) == []
