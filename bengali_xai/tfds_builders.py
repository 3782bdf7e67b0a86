"""TFDS builders for Ekush and NumtaDB read from a manual directory (no download).

    import tensorflow_datasets as tfds
    from bengali_xai.tfds_builders import EkushDigits
    builder = EkushDigits(data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir="path/to/ekush"))
    ds = builder.as_dataset(split="train", as_supervised=True)   # (uint8 28x28x1, digit)

Registered names: `ekush_digits` and `numtadb_digits`. Both reuse this package's loaders, so
their checks and error messages apply. (tensorflow-datasets 4.9 needs the `importlib_resources`
package at build time, which it does not declare.)
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from .digits import DigitData


def _features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(28, 28, 1)),
        "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
    })


def _examples(data: DigitData) -> Iterator[tuple[int, dict]]:
    images = np.rint(data.x * 255.0).astype(np.uint8)
    for i, (img, label) in enumerate(zip(images, data.y)):
        yield i, {"image": img, "label": int(label)}


class EkushDigits(tfds.core.GeneratorBasedBuilder):
    """Ekush handwritten Bengali digits (maleDigits.csv + femaleDigits.csv), one `train` split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Ekush digit CSVs, labels 112..121 mapped to 0..9."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download the Ekush digit CSVs (Kaggle) and put maleDigits.csv and femaleDigits.csv in the manual dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=_features(), supervised_keys=("image", "label"),
                                              homepage="https://github.com/shahariarrabby/Ekush")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        return {"train": self._generate_examples(dl_manager.manual_dir)}

    def _generate_examples(self, path):
        from .data_ekush import load_ekush

        yield from _examples(load_ekush(path))


class NumtadbDigits(tfds.core.GeneratorBasedBuilder):
    """NumtaDB (training-a..e folders with their CSVs), grey 28x28, one `train` split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "NumtaDB training-a..e, RGB to grey, resized to 28x28; unreadable images skipped."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download NumtaDB (kaggle.com/BengaliAI/numta) and put the training-a .. training-e folders and "
        "their CSVs in the manual dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=_features(), supervised_keys=("image", "label"),
                                              homepage="https://www.kaggle.com/BengaliAI/numta")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        return {"train": self._generate_examples(dl_manager.manual_dir)}

    def _generate_examples(self, path):
        from .data_numtadb import load_numtadb

        yield from _examples(load_numtadb(path, progress=False))
