"""Fetch benchmark files, check them against known checksums, report what could not be had.

Why a downloader of our own: the HSI benchmarks (Trento, MUUFL, Houston 2013, Augsburg) are not pip- or
torchvision-installable; copies live in paper repositories, behind registration forms or on Google Drive,
and several "Trento HSI.mat" files in the wild hold different bytes. Every file rsmg fetches is therefore
pinned in ``rsmg/data/resources/sources.yaml`` to a URL list (official first, public mirrors after) and,
where one is known, a sha256 (or md5) that the bytes must match before they are moved into place. Files that
cannot be fetched automatically carry a ``manual`` note: the command prints it with the exact path to put
the file at, and verifies the file once a user has placed it.

Guarantees:

* a file only ever appears at its target path complete and verified (download to ``<target>.part``, check size
  and checksum, then :func:`rsmg.io.atomic_move`, an ``os.replace``, atomic on one filesystem);
* an interrupted download resumes (``Range: bytes=N-``; a server that ignores Range answers 200 and the
  download restarts from byte 0 instead of appending a second copy);
* a checksum mismatch deletes the ``.part`` and raises :class:`~rsmg.errors.DataError` naming the file, the
  expected and the found checksum;
* a file with no known checksum is never silently trusted: it is reported ``unverified`` with the sha256 it
  has, and ``require_hash=True`` (``--require-hash``) refuses it.

Only the standard library talks to the network (:mod:`urllib.request`), so a proxy set through ``https_proxy``
works and no ``requests`` dependency is needed.

Modules: :mod:`~rsmg.data.download.sources` (the table), :mod:`~rsmg.data.download.fetch` (resumable HTTP and
checksums), :mod:`~rsmg.data.download.files` (one file: check, fetch, verify, place, unpack) and
:mod:`~rsmg.data.download.datasets` (a whole dataset). The command line is ``rsmg download``
(:mod:`rsmg.cli.download`). Standard library only at import (PyYAML and tqdm are imported when used), so
``rsmg download`` starts fast.
"""

from rsmg.data.download.datasets import download_dataset, verify_dataset
from rsmg.data.download.files import STATUS_MEANING, FileStatus, Status
from rsmg.data.download.sources import DatasetInfo, FileSpec, dataset_info, dataset_names, load_sources

__all__ = [
    "STATUS_MEANING",
    "DatasetInfo",
    "FileSpec",
    "FileStatus",
    "Status",
    "dataset_info",
    "dataset_names",
    "download_dataset",
    "load_sources",
    "verify_dataset",
]
