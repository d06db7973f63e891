"""Reading points and labels from files (:mod:`jaxdse.io`)."""

import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from jaxdse.io import InputError, load_array, load_labels, load_points, load_reference


@pytest.fixture
def folder(tmp_path):
    return tmp_path


def test_npy_content_under_an_npz_name_is_read(folder):
    # np.save keeps a name that ends in .npz: the file is an .npy array, not an archive.
    path = folder / "x.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.arange(6.0).reshape(3, 2))
    assert load_array(path).shape == (3, 2)
    with pytest.raises(InputError, match="single .npy array"):
        load_array(path, array="features")


def test_npz_content_under_an_npy_name_is_read(folder):
    path = folder / "x.npy"
    with open(path, "wb") as handle:
        np.savez(handle, features=np.ones((3, 2)))
    assert load_array(path).shape == (3, 2)


def test_broken_npz_is_an_input_error(folder):
    path = folder / "x.npz"
    path.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(InputError, match="cannot read"):
        load_array(path)


def test_npz_member_is_chosen_by_array_name(folder):
    path = folder / "xy.npz"
    np.savez(path, features=np.ones((3, 2)), labels=np.arange(3))
    assert load_array(path, array="labels").tolist() == [0, 1, 2]
    with pytest.raises(
        InputError, match=r"holds 2 arrays \(features, labels\); choose one by name: .*array=NAME in jaxdse.io"
    ):
        load_array(path)
    with pytest.raises(InputError, match="--labels-array NAME on the command line"):
        load_labels(path)
    with pytest.raises(InputError, match="name: --array NAME on the command line"):
        load_points(path)
    with pytest.raises(InputError, match="no array 'nope'"):
        load_array(path, array="nope")
    with pytest.raises(InputError, match=".npz"):
        load_array(_npy(folder), array="features")


def test_bytes_and_pathlike_paths_are_file_names(folder):
    path = folder / "z.npy"
    np.save(path, np.arange(6.0).reshape(3, 2))
    for given in (path, str(path), bytes(path)):
        assert load_array(given).shape == (3, 2)
        assert load_points(given).values.shape == (3, 2)
    np.save(folder / "y.npy", np.arange(3) % 2)
    assert load_labels(bytes(folder / "y.npy"), 3).values.tolist() == [0, 1, 0]
    assert load_reference(bytes(path), 3).values.shape == (3, 2)
    with pytest.raises(InputError, match=r"file '.*missing.npy' does not exist"):
        load_array(bytes(folder / "missing.npy"))
    with pytest.raises(TypeError, match="path must be a file name"):
        load_array(3)


def test_npz_members_holding_objects_are_refused_not_unpickled(folder):
    path = folder / "objects.npz"
    np.savez(path, numbers=np.ones(3), things=np.array([{"a": 1}, None], dtype=object))
    assert load_array(path, array="numbers").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(InputError, match="array 'things' .* object arrays are not loaded"):
        load_array(path, array="things")
    # Members without a .npy header (np.load hands back their bytes): a pickle, other bytes.
    raw = folder / "raw.npz"
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("pickled.npy", pickle.dumps(np.arange(3)))
        archive.writestr("pickled_list", pickle.dumps([1, 2]))
        archive.writestr("text.npy", b"1 2 3")
    for member in ("pickled", "pickled_list"):
        with pytest.raises(InputError, match=f"array '{member}' .*object arrays and pickles are not loaded"):
            load_array(raw, array=member)
    with pytest.raises(InputError, match="array 'text' .*not a NumPy array"):
        load_points(raw, array="text")


def _npy(folder):
    path = folder / "plain.npy"
    np.save(path, np.ones(3))
    return path


def test_points_are_flattened_and_checked(folder):
    path = folder / "images.npy"
    np.save(path, np.zeros((5, 2, 3, 1), np.float32))
    loaded = load_points(path)
    assert loaded.values.shape == (5, 6) and loaded.values.dtype == np.float64
    assert loaded.shape == (5, 2, 3, 1)
    assert "flattened" in loaded.notes[0]
    column = folder / "column.npy"
    np.save(column, np.arange(4.0))
    assert load_points(column).values.shape == (4, 1)
    bad = folder / "nan.npy"
    np.save(bad, np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]))
    with pytest.raises(InputError, match=r"NaN .* \(rows 1\)"):
        load_points(bad)
    single = folder / "one.npy"
    np.save(single, np.ones((1, 3)))
    with pytest.raises(InputError, match="at least 2"):
        load_points(single)
    words = folder / "words.npy"
    np.save(words, np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InputError, match="expected numbers"):
        load_points(words)


@pytest.mark.parametrize(
    "text, header",
    [
        ("label\ncat\ndog\ncat\nbee\n", True),
        ("cat\ndog\ncat\nbee\n", False),  # the first word occurs again: not a header
        ('"label"\n"cat"\n"dog"\n"cat"\n"bee"\n', True),
    ],
)
def test_text_labels_in_a_csv_file(folder, text, header):
    path = folder / "labels.csv"
    path.write_text(text)
    loaded = load_labels(path, 4)
    assert loaded.values.tolist() == [1, 2, 1, 0]  # bee < cat < dog
    assert "text labels" in loaded.notes[0]


def test_numeric_labels_with_a_header_and_conversions(folder):
    path = folder / "y.csv"
    path.write_text("class\n0\n2\n2\n1\n")
    assert load_labels(path, 4).values.tolist() == [0, 2, 2, 1]
    onehot = folder / "onehot.npy"
    np.save(onehot, np.eye(3)[[0, 2, 1]])
    loaded = load_labels(onehot, 3)
    assert loaded.values.tolist() == [0, 2, 1] and "one-hot" in loaded.notes[0]
    floats = folder / "floats.npy"
    np.save(floats, np.array([0.0, 1.0, 1.0]))
    assert load_labels(floats).values.dtype == np.int64
    real = folder / "real.npy"
    np.save(real, np.array([0.5, 1.0, 1.0]))
    with pytest.raises(InputError, match="non-integer"):
        load_labels(real)
    with pytest.raises(InputError, match="3 labels but the features has 4 rows"):
        load_labels(floats, 4)


def test_words_in_a_points_table_are_an_error(folder):
    path = folder / "x.csv"
    path.write_text("a,b\n1,2\nx,4\n")
    with pytest.raises(InputError, match="'x' is not a number"):
        load_points(path)
    labels = folder / "y.csv"
    labels.write_text("1\n2\nx,4\n")
    with pytest.raises(InputError):
        load_labels(labels)


def test_reference_is_flattened_and_row_counts_checked(folder):
    path = folder / "ref.npy"
    np.save(path, np.zeros((4, 2, 2)))
    loaded = load_reference(path, 4)
    assert loaded.values.shape == (4, 4) and loaded.notes
    with pytest.raises(InputError, match="rows"):
        load_reference(path, 5)


def test_unknown_extension_and_missing_file(folder):
    (folder / "data.dat").write_text("1 2\n")
    with pytest.raises(InputError, match="unknown extension"):
        load_array(folder / "data.dat")
    with pytest.raises(InputError, match="does not exist"):
        load_array(pathlib.Path(folder) / "missing.npy")
