"""`tag_folder`: caption every image of a folder that has no caption yet.

decode threads (preprocess, read-ahead) → onnxruntime on this thread, one batch at a time →
caption rule → writer thread (atomic caption files, manifest rows). The model is loaded only
when something is left to caption, so a rerun over a finished folder is a directory listing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from swimlatent_wrap.tagger.caption import CaptionRule, caption_line
from swimlatent_wrap.tagger.decode import Decoded, decode_ahead, default_workers
from swimlatent_wrap.tagger.folder import Work, find_work
from swimlatent_wrap.tagger.labels import RATING, Labels, read_labels
from swimlatent_wrap.tagger.model_files import resolve_model
from swimlatent_wrap.tagger.record import ImageTags, ManifestAccess, ManifestRecorder
from swimlatent_wrap.tagger.terminal import Terminal
from swimlatent_wrap.tagger.writer import CaptionWriter


@dataclass(frozen=True)
class TagJob:
    images: Path  # the folder; captions go beside the images
    model: str  # Hugging Face repo id, or a folder with model.onnx + selected_tags.csv
    rule: CaptionRule
    batch_size: int = 8
    force: bool = False  # re-caption images that already have a caption
    manifest: ManifestAccess | None = None  # record tags here, if the file exists (the stage opens it)
    only: tuple[str, ...] | None = None  # caption only these file names (a curated selection)
    model_base: Path | None = None  # a relative model folder is looked up here first (the recipe's folder)
    workers: int | None = None  # decode threads; default one per CPU core
    resize: str = "sd-scripts"  # preprocess.SD_SCRIPTS (area / LANCZOS) or preprocess.BICUBIC (the authors' reference)


@dataclass
class TagReport:
    folder: Path
    captioned: list[Path] = field(default_factory=list)  # caption files written this run
    already: int = 0  # images skipped because they had a caption
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (image, reason), no caption written
    empty: list[Path] = field(default_factory=list)  # images no tag passed the thresholds and blacklist for (no prefix either)
    clashes: list[Path] = field(default_factory=list)
    provider: str | None = None  # None when the model was not needed
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.captioned) / self.seconds if self.seconds > 0 else 0.0


def tag_folder(job: TagJob, terminal: Terminal | None = None) -> TagReport:
    terminal = terminal or Terminal()
    started = time.perf_counter()
    work = find_work(job.images, job.force, job.only)
    report = TagReport(job.images, already=len(work.captioned), clashes=list(work.clashes))
    if work.clashes:
        terminal.warn(f"{len(work.clashes)} image(s) share a file stem with another image, so they would share its caption file; "
                      "not captioned separately:", *(f"  {p.name}" for p in work.clashes))
    if not work.pending:
        report.seconds = time.perf_counter() - started
        return report
    _caption_pending(job, work, report, terminal)
    report.seconds = time.perf_counter() - started
    return report


def _caption_pending(job: TagJob, work: Work, report: TagReport, terminal: Terminal) -> None:
    import numpy as np

    from swimlatent_wrap.tagger.session import TaggerSession

    files = resolve_model(job.model, job.model_base)
    labels = read_labels(files.tags)
    session = TaggerSession(files, len(labels))
    report.provider = session.provider
    if session.cpu_reason:
        terminal.warn(f"the tagger runs on the CPU, which is much slower: {session.cpu_reason}")
    batch_size = job.batch_size
    if session.input.fixed_batch is not None and session.input.fixed_batch != batch_size:
        terminal.warn(f"{files.onnx.name} has its batch size fixed at {session.input.fixed_batch}; using that instead of {batch_size}")
        batch_size = session.input.fixed_batch
    workers = job.workers or default_workers()
    terminal.note(f"tagging {len(work.pending)} image(s) in {job.images} with {files.spec} on {session.provider} "
                  f"(batch {batch_size}, {workers} decode thread(s), {job.resize} resize); {len(work.captioned)} already captioned")
    ratings = np.array(labels.indices(RATING), dtype=np.intp)
    recorder = None
    if job.manifest is not None and job.manifest.exists():
        manifest, spec = job.manifest, files.spec
        recorder = lambda: ManifestRecorder(manifest, spec)  # noqa: E731 - made on the writer thread
    writer = CaptionWriter(job.images, recorder)
    decoded = decode_ahead(work.pending, session.input.size, workers, ahead=2 * batch_size + workers, resize=job.resize)
    try:
        with terminal.progress(len(work.pending), "tagging") as advance:
            for batch in _batches(decoded, batch_size, report, advance):
                scores = session.run(np.stack([item.pixels for item in batch])).astype(np.float64)
                tags = [_image_tags(item.path.name, row, labels, ratings, job.rule) for item, row in zip(batch, scores)]
                report.empty += [item.path for item, found in zip(batch, tags) if not found.caption]
                writer.put(tags)
                advance(len(batch))
    finally:
        decoded.close()
        writer.close()  # writes every caption already computed, also on Ctrl-C
        report.captioned = list(writer.written)


def _batches(decoded: Iterator[Decoded], size: int, report: TagReport, advance) -> Iterator[list[Decoded]]:
    """Group readable images into batches; unreadable ones are reported and skipped."""
    batch: list[Decoded] = []
    for item in decoded:
        if item.error is not None:
            report.unreadable.append((item.path, item.error))
            advance(1)
            continue
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _image_tags(name: str, row, labels: Labels, ratings, rule: CaptionRule) -> ImageTags:
    import numpy as np

    # Only tags that can pass a threshold, plus the ratings, leave numpy: ~9000 outputs per image.
    kept = np.union1d(np.flatnonzero(row >= rule.floor), ratings)
    scores = {int(i): float(row[i]) for i in kept}
    return ImageTags(name, caption_line(scores, labels, rule),
                     [(labels.names[i], labels.categories[i], p) for i, p in scores.items()])
