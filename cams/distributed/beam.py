"""Explain a folder of images on Apache Beam: the same job on the DirectRunner, Dataflow, Flink or Spark.

The pipeline (needs the `beam` extra: pip install "keras-cams[beam]"):

    patterns --MatchAll--> files --Reshuffle--DecodeImages--> (name, image) --BatchElements--> batches
        --RunInference(ExplainersHandler)--> (name, image, probabilities, maps) --WriteOutputs--> files
                      \\--unreadable--> ToList --> <out>/unreadable.txt

Files are matched with Beam's FileSystems (local paths; gs://, s3://, ... where the installed Beam
has those file systems) and decoded in the workers with `cams.core.images.decode_image`, the decoder
of the single-process path. An unreadable file increments the counter `unreadable` and goes to a
tagged side output written to `<out>/unreadable.txt`; it never fails the job. `RunInference`
(Beam's batch-inference transform, as in TFX) calls `ExplainersHandler`, which loads the Keras model
once per worker process and builds the explainers from the method registry. Each image's outputs
are `cams.distributed.local.image_outputs` (the same names and bytes as `explain_folder`), each file
written atomically and the .npz last; images whose .npz exists are skipped, so a rerun resumes.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from cams.core.images import IMAGE_SUFFIXES, decode_image
from cams.distributed.local import (BatchExplainer, BatchReport, image_outputs, image_size, npz_name, relative_name,
                                    write_local)

#: namespace of the pipeline's counters (RunInference adds its own under "RunInference")
METRICS_NAMESPACE = "cams.explain_folder"
COUNTERS = ("images", "already_done", "unreadable", "explained")
RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")
RAW = CompressionTypes.UNCOMPRESSED
UNREADABLE_LIST = "unreadable.txt"


@dataclass(frozen=True)
class FolderJob:
    """What to explain and how: everything a worker needs (plain strings and numbers, so it pickles)."""

    model: str
    out: str
    methods: str = "gradcam"
    layer: Optional[str] = None
    lcam: Optional[str] = None
    shape: Tuple[int, int, int] = (0, 0, 0)  # (H, W, channels) images are decoded to
    scale: float = 1 / 255.0
    offset: float = 0.0
    batch_size: int = 16
    overlays: bool = True
    unsafe: bool = False  # let Keras deserialise Lambda layers (only for model files you trust)


def is_local(path: str) -> bool:
    """True for paths on this machine's file system (no gs://, s3://, ... scheme)."""
    return FileSystems.get_scheme(str(path)) in (None, "file")


def cannot_read(path: str, err: Exception) -> ValueError:
    """One line for a URL Beam's file systems cannot read (a missing file system extra, credentials, ...)."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return ValueError(f"{path}: cannot read it through Beam's file systems ({first}); for gs:// or s3:// paths "
                      f"install apache-beam[gcp] or apache-beam[aws]")


def local_copy(path: str, folder: str) -> str:
    """`path` itself when local, else a copy in the local `folder` read through Beam's FileSystems."""
    if is_local(path):
        return str(path)
    copy = os.path.join(folder, "copy" + os.path.splitext(path)[1])
    try:
        with open(copy, "wb") as dst, FileSystems.open(path, compression_type=RAW) as src:
            dst.write(src.read())
    except (ValueError, OSError) as err:
        raise cannot_read(path, err) from None
    return copy


def build_explainers(job: FolderJob):
    """(model, {method: explainer}) for `job`: the Keras model and the registry's explainers (--methods/--layer/--lcam)."""
    from cams.core.model_io import load_keras_model
    from cams.methods.registry import build_explainers

    with tempfile.TemporaryDirectory() as model_dir, tempfile.TemporaryDirectory() as lcam_dir:
        model = load_keras_model(local_copy(job.model, model_dir), unsafe=job.unsafe)  # loaded into memory: copies can go
        lcam = local_copy(job.lcam, lcam_dir) if job.lcam else None
        return model, build_explainers(model, job.methods, layer=job.layer, trained_file=lcam)


def write_outputs(out: str, outputs: Dict[str, bytes]) -> None:
    """Write one image's files under `out`: atomically on local disks; object stores publish a file on close."""
    if is_local(out):
        write_local(out, outputs)
        return
    for name, data in outputs.items():
        with FileSystems.create(FileSystems.join(out, name), mime_type="application/octet-stream",
                                compression_type=RAW) as f:
            f.write(data)


class DecodeImages(beam.DoFn):
    """FileMetadata -> (relative name, float32 image); done images are dropped, unreadable ones tagged."""

    UNREADABLE = "unreadable"

    def __init__(self, job: FolderJob, folders: Sequence[str], files: Sequence[str]):
        self.job, self.folders, self.files = job, list(folders), set(files)
        self.images = Metrics.counter(METRICS_NAMESPACE, "images")
        self.done = Metrics.counter(METRICS_NAMESPACE, "already_done")
        self.unreadable = Metrics.counter(METRICS_NAMESPACE, "unreadable")

    def process(self, meta):
        path = meta.path
        # folders contribute image files only (by suffix); files named on the command line are always tried
        if path in self.files or os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES:
            self.images.inc()
            rel = relative_name(path, self.folders)
            if FileSystems.exists(FileSystems.join(self.job.out, npz_name(rel))):
                self.done.inc()
            else:
                yield self.decode(path, rel)

    def decode(self, path: str, rel: str):
        """(rel, image), or a TaggedOutput 'path<TAB>reason' for the unreadable list."""
        try:
            with FileSystems.open(path, compression_type=RAW) as f:
                data = f.read()
            h, w, c = self.job.shape
            return rel, decode_image(data, (h, w), c, self.job.scale, self.job.offset, name=path)
        except (ValueError, OSError) as err:
            self.unreadable.inc()
            return beam.pvalue.TaggedOutput(self.UNREADABLE, f"{path}\t{str(err).removeprefix(path + ': ')}")


class ExplainersHandler(ModelHandler):
    """RunInference model handler: loads the Keras model and builds the explainers once per worker.

    Examples are (relative name, image); a batch gives one `PredictionResult` per image whose
    `inference` is (softmax probabilities (K,), {method: (H, W) map}).
    """

    def __init__(self, job: FolderJob):
        super().__init__()
        self.job = job

    def load_model(self) -> BatchExplainer:
        model, explainers = build_explainers(self.job)
        return BatchExplainer(model, explainers, self.job.batch_size)

    def run_inference(self, batch, model, inference_args=None) -> Iterable[PredictionResult]:
        probs, maps = model(np.stack([image for _, image in batch]))
        return [PredictionResult(example, (probs[j], {name: m[j] for name, m in maps.items()}))
                for j, example in enumerate(batch)]

    def get_num_bytes(self, batch) -> int:
        return int(sum(image.nbytes for _, image in batch))


class WriteOutputs(beam.DoFn):
    """PredictionResult -> the image's .npz (and overlays) under the output folder."""

    def __init__(self, job: FolderJob):
        self.job = job
        self.explained = Metrics.counter(METRICS_NAMESPACE, "explained")

    def process(self, result: PredictionResult):
        (rel, image), (probs, maps) = result.example, result.inference
        write_outputs(self.job.out, image_outputs(rel, image, maps, probs, self.job.overlays))
        self.explained.inc()
        yield rel


def input_patterns(inputs: Sequence[str]) -> Tuple[list, list, list]:
    """(patterns, folders, files): a folder becomes '<folder>/**', a file itself (local paths made absolute).

    Raises ValueError naming a local input that does not exist.
    """
    patterns, folders, named = [], [], []
    for item in map(str, inputs):
        if is_local(item):
            p = Path(item)
            if not p.exists():
                raise ValueError(f"{item}: no such file or folder")
            item = p.resolve().as_posix()
            is_folder = p.is_dir()
        else:
            try:
                is_folder = not FileSystems.match([item])[0].metadata_list  # a folder is a prefix, not an object
            except (ValueError, OSError) as err:
                raise cannot_read(item, err) from None
        if is_folder:
            folders.append(item.rstrip("/"))
            patterns.append(item.rstrip("/") + "/**")
        else:
            named.append(item)
            patterns.append(item)
    return patterns, folders, named


def build_pipeline(p: beam.Pipeline, job: FolderJob, inputs: Sequence[str]) -> None:
    """Add the explain-folder transforms to `p` (see the module docstring)."""
    patterns, folders, named = input_patterns(inputs)
    decoded = (
        p
        | "Patterns" >> beam.Create(patterns)
        | "Match" >> fileio.MatchAll()
        | "Spread" >> beam.Reshuffle()  # one pattern matches many files: let every worker decode some
        | "Decode" >> beam.ParDo(DecodeImages(job, folders, named)).with_outputs(DecodeImages.UNREADABLE, main="images")
    )
    (
        decoded.images
        | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=job.batch_size)
        | "Explain" >> RunInference(ExplainersHandler(job).with_no_batching())
        | "Write" >> beam.ParDo(WriteOutputs(job))
    )
    (
        decoded[DecodeImages.UNREADABLE]
        | "CollectUnreadable" >> beam.combiners.ToList()
        | "ListUnreadable" >> beam.Map(write_unreadable, job.out)
    )


def write_unreadable(lines: Sequence[str], out: str) -> None:
    """<out>/unreadable.txt: one 'file<TAB>reason' line per unreadable file of this run, sorted (atomically)."""
    write_outputs(out, {UNREADABLE_LIST: "".join(line + "\n" for line in sorted(lines)).encode("utf-8")})


def pipeline_options(runner: str, num_workers: Optional[int] = None, extra: Sequence[str] = ()) -> PipelineOptions:
    """Beam options for `runner` (+ `--direct_num_workers` processes on the DirectRunner) and any `extra` flags."""
    if runner not in RUNNERS:
        raise ValueError(f"--runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    flags = [f"--runner={runner}"]
    if num_workers is not None:
        if num_workers < 1 or runner != "DirectRunner":
            raise ValueError(f"--direct-num-workers must be >= 1 and needs --runner DirectRunner, got {num_workers}")
        mode = "multi_processing" if num_workers > 1 else "in_memory"
        flags += [f"--direct_num_workers={num_workers}", f"--direct_running_mode={mode}"]
    return PipelineOptions(flags + list(extra))


def counters(result) -> Dict[str, int]:
    """The pipeline's counters {name: value} (committed values where the runner reports them)."""
    totals: Dict[str, int] = dict.fromkeys(COUNTERS, 0)
    for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + int(value or 0)
    return totals


def explain_folder_beam(model: str, inputs: Sequence[str], out: str, methods: str = "gradcam",
                        layer: Optional[str] = None, lcam: Optional[str] = None,
                        size: Optional[Tuple[int, int]] = None, scale: float = 1 / 255.0, offset: float = 0.0,
                        batch_size: int = 16, overlays: bool = True, runner: str = "DirectRunner",
                        num_workers: Optional[int] = None, pipeline_args: Sequence[str] = (),
                        unsafe: bool = False) -> BatchReport:
    """Run the explain-folder pipeline and wait for it; the outputs equal `local.explain_folder`'s.

    Args:
        model: the .keras file (a local path or a URL Beam's FileSystems can read, e.g. gs://...).
        inputs: image files and/or folders (local or URLs), folders searched recursively.
        out: output folder (local or URL): maps/, overlays/ and unreadable.txt go under it.
        methods, layer, lcam: as `cams explain-folder --methods/--layer/--lcam` (the registry's names).
        size, scale, offset, batch_size, overlays: as `local.explain_folder`.
        runner: one of RUNNERS; num_workers: DirectRunner processes; pipeline_args: other Beam flags.
        unsafe: let Keras deserialise Lambda layers (`cams ... --unsafe`; only for model files you trust).

    Returns:
        A `BatchReport` from the pipeline's counters; `skipped` lists unreadable.txt's files.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    options = pipeline_options(runner, num_workers, pipeline_args)
    out = str(out) if not is_local(str(out)) else Path(out).resolve().as_posix()
    job = FolderJob(model=str(model), out=out, methods=methods, layer=layer, lcam=lcam, scale=scale, offset=offset,
                    batch_size=batch_size, overlays=overlays, unsafe=unsafe)
    keras_model, _ = build_explainers(job)  # fails early, with one line, on a bad model, method, layer or L-CAM file
    job = replace(job, shape=image_size(keras_model, size))
    p = beam.Pipeline(options=options)
    build_pipeline(p, job, inputs)
    result = p.run()
    result.wait_until_finish()
    c = counters(result)
    return BatchReport(total=c["images"], done_before=c["already_done"], explained=c["explained"],
                       skipped=read_unreadable(out), out=Path(out) if is_local(out) else out)


def read_unreadable(out: str):
    """[(file, reason)] listed in <out>/unreadable.txt by the last run."""
    path = FileSystems.join(out, UNREADABLE_LIST)
    if not FileSystems.exists(path):
        return []
    with FileSystems.open(path, compression_type=RAW) as f:
        lines = f.read().decode("utf-8").splitlines()
    return [tuple(line.split("\t", 1)) if "\t" in line else (line, "not a readable image") for line in lines if line]
