"""Class names for figures: labels files, Keras' ImageNet class index, and `cams explain --labels`."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from cams.cli import main
from cams.core import labels
from cams_models import conv_gap_dense


def test_labels_files_in_three_formats(tmp_path):
    (tmp_path / "a.txt").write_text("cat\n\ndog\nbird\n")
    (tmp_path / "b.json").write_text(json.dumps(["cat", "dog", "bird"]))
    (tmp_path / "c.json").write_text(json.dumps({"1": ["n2", "dog"], "0": ["n1", "cat"], "2": ["n3", "bird"]}))
    for name in ("a.txt", "b.json", "c.json"):
        assert labels.read_class_names(tmp_path / name) == ["cat", "dog", "bird"]
    assert labels.describe(1, ["cat", "dog"]) == "dog (class 1)" and labels.describe(1, None) == "class 1"


@pytest.mark.parametrize("content,message", [
    (None, "no such labels file"),
    ("", "the labels file is empty"),
    ("[1, 2", "not valid JSON"),
    ('{"a": 1}', "not a list of class names nor a class index"),
])
def test_bad_labels_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "labels.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        labels.read_class_names(path)


def test_labels_count_must_match_the_model(tmp_path):
    (tmp_path / "l.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="2 class names, but the model has 4 outputs"):
        labels.class_names_for(4, tmp_path / "l.txt")
    assert labels.class_names_for(4) is None  # not ImageNet-sized: numbers


def test_imagenet_names_from_the_keras_cache_and_fallback_offline(tmp_path, monkeypatch, capsys):
    index = {str(i): [f"n{i:08d}", f"name{i}"] for i in range(1000)}
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "imagenet_class_index.json"
    path.write_text(json.dumps(index))
    monkeypatch.setattr(labels, "IMAGENET_INDEX_HASH", hashlib.md5(path.read_bytes()).hexdigest())
    names = labels.imagenet_class_names(cache_dir=str(tmp_path))
    assert len(names) == 1000 and names[281] == "name281"
    # no cached index and no network: figures fall back to numbers, with one note
    monkeypatch.setattr(labels, "IMAGENET_INDEX_URL", "http://127.0.0.1:9/imagenet_class_index.json")
    assert labels.imagenet_class_names(cache_dir=str(tmp_path / "empty")) is None
    assert "ImageNet class names unavailable" in capsys.readouterr().err


def test_explain_names_classes_from_labels_file(tmp_path, capsys):
    model = conv_gap_dense(size=16, classes=3, softmax=True)
    model.save(tmp_path / "m.keras")
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "names.txt").write_text("apple\nbanana\ncherry\n")
    assert main(["explain", "--model", str(tmp_path / "m.keras"), "--images", str(tmp_path / "imgs"),
                 "--labels", str(tmp_path / "names.txt"), "--out", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "file,class,name,probability" and len(rows) == 3
    for row in rows[1:]:
        _, k, name, _ = row.split(",")
        assert name == ["apple", "banana", "cherry"][int(k)]
    (tmp_path / "two.txt").write_text("apple\nbanana\n")
    assert main(["explain", "--model", str(tmp_path / "m.keras"), "--images", str(tmp_path / "imgs"),
                 "--labels", str(tmp_path / "two.txt"), "--out", str(tmp_path / "out2")]) == 2
    assert "2 class names, but the model has 3 outputs" in capsys.readouterr().err
