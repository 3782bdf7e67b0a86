"""Explain a folder of images on Apache Beam: the same job on the DirectRunner, Dataflow, Flink or Spark.

The pipeline (needs the `beam` extra: pip install "keras-cams[beam]"):

    patterns --MatchAll--> files --Distinct--DecodeImages--> (file, name, image) --BatchElements--> batches
        --RunInference(ExplainersHandler)--> (file, name, image, probabilities, maps) --WriteOutputs--> files
                      |                                                                 \\--> rows
                      |--done--> ReadDone: the row from the image's .npz ----------------> rows
                      \\--unreadable--> ToList --> <out>/unreadable.txt
    rows --ToList--> <out>/predictions.csv

Files are matched with Beam's FileSystems (local paths; gs://, s3://, ... where the installed Beam
has those file systems) and decoded in the workers with `cams.core.images.decode_image`, the decoder
of the single-process path. An unreadable file increments the counter `unreadable` and goes to a
tagged side output written to `<out>/unreadable.txt`; it never fails the job. `RunInference`
(Beam's batch-inference transform, as in TFX) calls `ExplainersHandler`, which loads the Keras model
once per worker process and builds the explainers from the method registry. Each image's outputs
are `cams.distributed.local.image_outputs` (the same names and bytes as `explain_folder`), each file
written atomically and the .npz last; images whose .npz exists are skipped, so a rerun resumes.

Before the pipeline starts, the driver lists the inputs (to give images whose names would meet
distinct names: `local.output_names`; only the renamed ones travel with the pipeline) and checks the
output folder exactly as the single-process path does (`local.claim_job`: the run manifest
`.cams-run.explain-folder.json`, a user file in the way, an earlier run with other settings,
`restart`); a URL --out keeps its manifest through Beam's FileSystems (`RemoteOutputFolder`).
Tables (predictions.csv, and unreadable.txt: 'file<TAB>reason' lines) go through the csv module.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

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
from cams.core.mapfiles import SHARD_NAME
from cams.core.outputs import MANIFEST_PREFIX, MANIFEST_VERSION, OutputFolder
from cams.distributed.local import (COMMAND, JOB, PREDICTIONS, PREDICTIONS_HEADER, SUBFOLDERS, BatchExplainer,
                                    BatchReport, check_out, claim_job, derived_names, earlier_outputs, image_outputs,
                                    image_size, job_settings, npz_name, open_output, output_names, prediction_row,
                                    read_prediction, relative_name, with_earlier_defaults, write_local)

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
    maps_dtype: str = "float16"  # the maps' encoding (cams.core.mapfiles)
    jit: bool = False  # XLA-compile the batch function


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


#: {`_built_key`: (model, explainers)} that `explain_folder_beam` built before the pipeline, for a handler
#: loading the same job in this process (the DirectRunner's in-process worker) to reuse instead of
#: loading the model again; emptied when the run ends
_BUILT: Dict[tuple, tuple] = {}


def _file_state(path: Optional[str]):
    """(mtime_ns, size) of a local file, None for a URL or no file: a key part that changes with the file."""
    if path is None or not is_local(path) or not os.path.isfile(path):
        return None
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _built_key(job: FolderJob) -> tuple:
    return (job.model, _file_state(job.model), job.methods, job.layer, job.lcam, _file_state(job.lcam), job.unsafe)


def build_explainers(job: FolderJob):
    """(model, {method: explainer}) for `job`: the Keras model and the registry's explainers (--methods/--layer/--lcam);
    those built for the same job and files earlier in this run (`_BUILT`) when there are."""
    from cams.core.model_io import load_keras_model
    from cams.methods.registry import build_explainers

    built = _BUILT.get(_built_key(job))
    if built is not None:
        return built
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


def digest(path: Optional[str]) -> Optional[str]:
    """The first 16 hex digits of the sha256 of a file read through Beam's FileSystems (None for None)."""
    if path is None:
        return None
    h = hashlib.sha256()
    try:
        with FileSystems.open(str(path), compression_type=RAW) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (ValueError, OSError) as err:
        raise cannot_read(str(path), err) from None
    return h.hexdigest()[:16]


def table_bytes(rows: Iterable[Sequence], header: Optional[Sequence[str]] = None, delimiter: str = ",") -> bytes:
    """A table encoded by the csv module (fields with the delimiter, quotes or line breaks quoted), UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


class DecodeImages(beam.DoFn):
    """file -> (file, output name, float32 image); done images tagged 'done', unreadable ones 'unreadable'."""

    UNREADABLE = "unreadable"
    DONE = "done"

    def __init__(self, job: FolderJob, folders: Sequence[str], files: Sequence[str],
                 renamed: Optional[Mapping[str, str]] = None):
        self.job, self.folders, self.files, self.renamed = job, list(folders), set(files), dict(renamed or {})
        self.images = Metrics.counter(METRICS_NAMESPACE, "images")
        self.done = Metrics.counter(METRICS_NAMESPACE, "already_done")
        self.unreadable = Metrics.counter(METRICS_NAMESPACE, "unreadable")

    def process(self, path: str):
        # folders contribute image files only (by suffix); files named on the command line are always tried
        if path in self.files or os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES:
            self.images.inc()
            rel = self.renamed.get(path) or relative_name(path, self.folders)
            if FileSystems.exists(FileSystems.join(self.job.out, npz_name(rel))):
                self.done.inc()
                yield beam.pvalue.TaggedOutput(self.DONE, (path, rel))
            else:
                yield self.decode(path, rel)

    def decode(self, path: str, rel: str):
        """(path, rel, image), or a TaggedOutput (path, reason) for the unreadable list."""
        try:
            with FileSystems.open(path, compression_type=RAW) as f:
                data = f.read()
            h, w, c = self.job.shape
            return path, rel, decode_image(data, (h, w), c, self.job.scale, self.job.offset, name=path)
        except (ValueError, OSError) as err:
            self.unreadable.inc()
            return beam.pvalue.TaggedOutput(self.UNREADABLE, (path, str(err).removeprefix(path + ": ")))


class ExplainersHandler(ModelHandler):
    """RunInference model handler: loads the Keras model and builds the explainers once per worker.

    Examples are (file, relative name, image); a batch gives one `PredictionResult` per image whose
    `inference` is (softmax probabilities (K,), {method: (H, W) map}).
    """

    def __init__(self, job: FolderJob):
        super().__init__()
        self.job = job

    def load_model(self) -> BatchExplainer:
        model, explainers = build_explainers(self.job)
        return BatchExplainer(model, explainers, self.job.batch_size, jit=self.job.jit)

    def run_inference(self, batch, model, inference_args=None) -> Iterable[PredictionResult]:
        probs, maps = model(np.stack([example[-1] for example in batch]))
        return [PredictionResult(example, (probs[j], {name: m[j] for name, m in maps.items()}))
                for j, example in enumerate(batch)]

    def get_num_bytes(self, batch) -> int:
        return int(sum(example[-1].nbytes for example in batch))


class WriteOutputs(beam.DoFn):
    """PredictionResult -> the image's .npz (and overlays) under the output folder; yields its predictions.csv row."""

    def __init__(self, job: FolderJob):
        self.job = job
        self.explained = Metrics.counter(METRICS_NAMESPACE, "explained")

    def process(self, result: PredictionResult):
        (path, rel, image), (probs, maps) = result.example, result.inference
        write_outputs(self.job.out, image_outputs(rel, image, maps, probs, self.job.overlays, self.job.maps_dtype))
        self.explained.inc()
        yield prediction_row(path, rel, probs.argmax(), probs.max())


def read_done(item: Tuple[str, str], out: str) -> tuple:
    """(file, rel) of an image done before -> its predictions.csv row, read from its .npz."""
    path, rel = item
    try:
        with FileSystems.open(FileSystems.join(out, npz_name(rel)), compression_type=RAW) as f:
            data = f.read()
    except (ValueError, OSError):
        data = b""
    return read_prediction(path, rel, io.BytesIO(data))


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


def list_inputs(inputs: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(image files, input folders) as the pipeline sees them, listed once on the driver (Beam's FileSystems).

    Args:
        inputs: the --images arguments (local paths or URLs).

    Returns:
        The files the pipeline decodes (each once, sorted) and the folders, in `local.input_key` form.
    """
    patterns, folders, named = input_patterns(inputs)
    found, globs = set(named), [p for p in patterns if p not in named]
    try:
        for result in FileSystems.match(globs) if globs else []:
            found.update(m.path for m in result.metadata_list if os.path.splitext(m.path)[1].lower() in IMAGE_SUFFIXES)
    except (ValueError, OSError) as err:
        raise cannot_read(", ".join(patterns), err) from None
    return sorted(found), folders


def build_pipeline(p: beam.Pipeline, job: FolderJob, inputs: Sequence[str],
                   renamed: Optional[Mapping[str, str]] = None) -> None:
    """Add the explain-folder transforms to `p` (see the module docstring).

    Args:
        p: the pipeline; job: what to explain; inputs: the --images arguments.
        renamed: {file: output name} for the images `local.output_names` gave a distinct name
            (the others are named by `relative_name`); from `explain_folder_beam`.
    """
    patterns, folders, named = input_patterns(inputs)
    decoded = (
        p
        | "Patterns" >> beam.Create(patterns)
        | "Match" >> fileio.MatchAll()
        | "Paths" >> beam.Map(lambda meta: meta.path)
        | "Once" >> beam.Distinct()  # a file under two --images is explained once; spreads the files over workers
        | "Decode" >> beam.ParDo(DecodeImages(job, folders, named, renamed)).with_outputs(
            DecodeImages.UNREADABLE, DecodeImages.DONE, main="images")
    )
    explained = (
        decoded.images
        # full batches (BatchElements would start at 1 image and grow, and each call runs a padded full batch)
        | "Batch" >> beam.BatchElements(min_batch_size=job.batch_size, max_batch_size=job.batch_size)
        | "Explain" >> RunInference(ExplainersHandler(job).with_no_batching())
        | "Write" >> beam.ParDo(WriteOutputs(job))
    )
    done = decoded[DecodeImages.DONE] | "ReadDone" >> beam.Map(read_done, job.out)
    (
        (explained, done)
        | "Rows" >> beam.Flatten()
        | "CollectRows" >> beam.combiners.ToList()
        | "Predictions" >> beam.Map(write_predictions, job.out)
    )
    (
        decoded[DecodeImages.UNREADABLE]
        | "CollectUnreadable" >> beam.combiners.ToList()
        | "ListUnreadable" >> beam.Map(write_unreadable, job.out)
    )


def write_predictions(rows: Sequence[tuple], out: str) -> None:
    """<out>/predictions.csv: a header and one row per explained image (this run's and earlier), sorted by file."""
    write_outputs(out, {PREDICTIONS: table_bytes(sorted(rows, key=lambda r: r[0]), PREDICTIONS_HEADER)})


def write_unreadable(items: Sequence[Tuple[str, str]], out: str) -> None:
    """<out>/unreadable.txt: one 'file<TAB>reason' line per unreadable file of this run, sorted (atomically;
    a field holding a tab, quote or line break is quoted by the csv module)."""
    write_outputs(out, {UNREADABLE_LIST: table_bytes(sorted(items), delimiter="\t")})


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


class RemoteOutputFolder(OutputFolder):
    """An `OutputFolder` at a URL (gs://, s3://, ...): its manifest read and written through Beam's FileSystems.

    Args:
        url: the output folder; settings: the job's `local.job_settings`.
    """

    def __init__(self, url: str, settings: Mapping):
        self.folder, self.job, self.command, self.option = url.rstrip("/"), JOB, COMMAND, "--out"
        self.overwrite, self.overwrite_option = False, None
        self.settings = json.loads(json.dumps(dict(settings), default=str))
        self.manifest_path = self.path(f"{MANIFEST_PREFIX}{JOB}.json")
        self.previous = self._read_manifest()
        self.files = list(self.previous.get("files", [])) if self.previous else []

    def _read_manifest(self) -> Optional[dict]:
        if not FileSystems.exists(self.manifest_path):
            return None
        with FileSystems.open(self.manifest_path, compression_type=RAW) as f:
            text = f.read().decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise ValueError(f"{self.manifest_path} is not a run manifest of {self.command}; move it away or "
                             f"choose another {self.option}")
        return data

    def path(self, name: str) -> str:
        """The URL of output `name` inside the folder."""
        return FileSystems.join(self.folder, name)

    def claim(self, names: Iterable[str]) -> None:
        """Refuse, before any work, when a file to be written exists and is not this job's."""
        for name in names:
            if not self.owns(str(name)) and FileSystems.exists(self.path(name)):
                raise ValueError(f"{self.path(name)} exists and was not written by {self.command}; "
                                 f"choose another {self.option}")

    def save(self) -> str:
        """Write the manifest now (an object store publishes it whole when it is closed)."""
        body = {"version": MANIFEST_VERSION, "command": self.command, "settings": self.settings, "files": self.files}
        write_outputs(self.folder, {f"{MANIFEST_PREFIX}{JOB}.json": (json.dumps(body, indent=2) + "\n").encode()})
        return self.manifest_path


def _list_keys(inputs: List[str]) -> Tuple[List[str], List[str]]:
    """`list_inputs` of the inputs that still exist (an earlier run's, for `earlier_outputs`)."""
    there = [p for p in inputs if (Path(p).exists() if is_local(p) else FileSystems.exists(p))]
    return list_inputs(there or inputs)


def open_remote_output(out: str, settings: Mapping, derived: Set[str],
                       restart: bool = False) -> Tuple[OutputFolder, Set[str]]:
    """`local.open_output` for a URL --out: checked (`local.claim_job`) and marked as this job's before any work.

    Args:
        out: the folder's URL.
        settings: `local.job_settings`.
        derived: `local.derived_names` of this run.
        restart: delete this job's own earlier outputs first.

    Returns:
        (the `RemoteOutputFolder`, its manifest saved; the derived files that exist now).
    """
    folder = with_earlier_defaults(RemoteOutputFolder(out, settings))
    existing = set()
    for sub in SUBFOLDERS:
        prefix = FileSystems.join(folder.folder, sub) + "/"
        try:
            matched = FileSystems.match([prefix + "**"])[0].metadata_list
        except (ValueError, OSError):
            matched = []
        existing.update(m.path[len(folder.folder) + 1:] for m in matched)
    if ((folder.previous or {}).get("settings") or {}).get("layout") == "shards":  # a single-process run's shards
        derived = derived | {name for name in existing if SHARD_NAME.match(name)}
    doomed = claim_job(folder, derived, existing, (PREDICTIONS, UNREADABLE_LIST), restart,
                       lambda: earlier_outputs(folder.previous.get("settings") or {}, _list_keys))
    there = [folder.path(n) for n in sorted(doomed) if FileSystems.exists(folder.path(n))]
    if there:
        FileSystems.delete(there)
    folder.save()
    return folder, (existing & derived) - doomed


def prepare_job(job: FolderJob, inputs: Sequence[str], size, restart: bool) -> Tuple[FolderJob, OutputFolder, dict]:
    """Before the pipeline: load the model, name the outputs and check the output folder.

    Args:
        job: the job (its `shape` is filled in here); inputs: the --images arguments;
        size: (H, W) for any-size models; restart: as `explain_folder_beam`.

    Returns:
        (the job with its image shape, its `OutputFolder`, {file: output name} of the renamed images).

    Raises:
        ValueError: one line on a bad model, method, layer or L-CAM file, or on the output folder.
    """
    keras_model, explainers = build_explainers(job)
    _BUILT[_built_key(job)] = (keras_model, explainers)  # the in-process worker's handler reuses them
    job = replace(job, shape=image_size(keras_model, size))
    paths, folders = list_inputs(inputs)
    names = output_names(paths, folders)
    renamed = {p: n for p, n in names.items() if n != relative_name(p, folders)}
    settings = job_settings(keras_model, inputs, list(explainers), job.shape, job.scale, job.offset, job.overlays,
                            job.layer, digest(job.lcam), job.maps_dtype)
    derived = derived_names(names.values(), list(explainers), job.overlays)
    if is_local(job.out):
        folder, _ = open_output(job.out, settings, derived, restart, (PREDICTIONS, UNREADABLE_LIST))
    else:
        folder, _ = open_remote_output(job.out, settings, derived, restart)
    return job, folder, renamed


def explain_folder_beam(model: str, inputs: Sequence[str], out: str, methods: str = "gradcam",
                        layer: Optional[str] = None, lcam: Optional[str] = None,
                        size: Optional[Tuple[int, int]] = None, scale: float = 1 / 255.0, offset: float = 0.0,
                        batch_size: int = 16, overlays: bool = True, runner: str = "DirectRunner",
                        num_workers: Optional[int] = None, pipeline_args: Sequence[str] = (),
                        unsafe: bool = False, restart: bool = False, maps_dtype: str = "float16",
                        jit: bool = False) -> BatchReport:
    """Run the explain-folder pipeline and wait for it; the outputs equal `local.explain_folder`'s.

    Args:
        model: the .keras file (a local path or a URL Beam's FileSystems can read, e.g. gs://...).
        inputs: image files and/or folders (local or URLs), folders searched recursively.
        out: output folder (local or URL): maps/, overlays/, predictions.csv and unreadable.txt go under
            it; checked before any work as `local.explain_folder` checks it.
        methods: as `cams explain-folder --methods` (the registry's names).
        layer: as `cams explain-folder --layer`.
        lcam: as `cams explain-folder --lcam`.
        size: as `local.explain_folder`.
        scale: as `local.explain_folder`.
        offset: as `local.explain_folder`.
        batch_size: as `local.explain_folder`.
        overlays: as `local.explain_folder`.
        runner: one of RUNNERS; num_workers: DirectRunner processes; pipeline_args: other Beam flags.
        unsafe: let Keras deserialise Lambda layers (`cams ... --unsafe`; only for model files you trust).
        restart: delete this job's own earlier outputs in `out` first (also after a change of settings).
        maps_dtype: as `local.explain_folder`.
        jit: as `local.explain_folder`.

    Returns:
        A `BatchReport` from the pipeline's counters; `skipped` lists unreadable.txt's files.

    Raises:
        ValueError: before any work, for an `out` that overlaps an input, a user file in the way or an
            earlier run with other settings (without `restart`).
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    options = pipeline_options(runner, num_workers, pipeline_args)
    check_out(out, inputs, model, lcam)
    out = str(out) if not is_local(str(out)) else Path(out).resolve().as_posix()
    job = FolderJob(model=str(model), out=out, methods=methods, layer=layer, lcam=lcam, scale=scale, offset=offset,
                    batch_size=batch_size, overlays=overlays, unsafe=unsafe, maps_dtype=maps_dtype, jit=jit)
    try:
        job, folder, renamed = prepare_job(job, inputs, size, restart)
        p = beam.Pipeline(options=options)
        build_pipeline(p, job, inputs, renamed)
        result = p.run()
        result.wait_until_finish()
    finally:
        _BUILT.clear()
    folder.record(PREDICTIONS, UNREADABLE_LIST)
    c = counters(result)
    return BatchReport(total=c["images"], done_before=c["already_done"], explained=c["explained"],
                       skipped=read_unreadable(out), out=Path(out) if is_local(out) else out)


def read_unreadable(out: str):
    """[(file, reason)] listed in <out>/unreadable.txt by the last run."""
    path = FileSystems.join(out, UNREADABLE_LIST)
    if not FileSystems.exists(path):
        return []
    with FileSystems.open(path, compression_type=RAW) as f:
        text = f.read().decode("utf-8")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    return [(row[0], row[1] if len(row) > 1 else "not a readable image") for row in rows if row]
