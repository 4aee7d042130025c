"""Dataset scale: quantize a folder, a list of files or WebDataset shards; resumable.

- :func:`quantize_dataset`: what ``colorquant dataset SRC DST`` runs (worker processes on one
  machine, or Ray Data with ``engine="ray"``), with a manifest in DST so that rerunning resumes;
- :func:`quantize_examples`: a Hugging Face ``Dataset.map(batched=True)`` function that adds the
  quantized image and its palette as columns;
- :func:`expand_braces`: the shard patterns ``data-{000000..000099}.tar``.

SRC and DST may be local paths or URLs of fsspec file systems (``s3://``, ``gs://``, ``az://``,
``hf://``, ``memory://``; :mod:`colorquant.dataset.storage`), where outputs are put whole and
the record of finished work is append-free (:mod:`colorquant.dataset.records`). The Ray engine
checks a cluster's nodes before any work (:mod:`colorquant.dataset.ray_engine`).

Importing this package imports neither torch, Ray, fsspec nor ``datasets``: Ray is imported by
``engine="ray"``, fsspec by a URL, torch only by the batched GPU path.
"""

from __future__ import annotations

from .hf import quantize_examples
from .job import ENGINES, DatasetSummary, Engine, JobStopped, quantize_dataset
from .lock import DestinationBusyError
from .manifest import SettingsMismatchError
from .sources import ERRORS_NAME, IMAGE_EXTENSIONS, MANIFEST_NAME, expand_braces

__all__ = [
    "ENGINES",
    "ERRORS_NAME",
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "DatasetSummary",
    "DestinationBusyError",
    "Engine",
    "JobStopped",
    "SettingsMismatchError",
    "expand_braces",
    "quantize_dataset",
    "quantize_examples",
]
