"""S3 client choice: buttress's S3BlobStore (boto3) against obstore, against moto on loopback.

Rows: one 64 MiB object streamed up in 1 MiB chunks and streamed down, and 1,000 objects of 1 KiB put
and read one after another. Each row is timed twice: wall time, which moto (a Python server in a child
process) dominates, and this process's CPU time, which is the client's own cost. obstore is not a
buttress dependency; install it ad hoc (``uv pip install obstore``) or its columns read n/a.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from tests.files._moto import ACCESS_KEY, REGION, SECRET_KEY, MotoProcess, create_bucket, s3_client

from benchmarks._harness import Row, Table, rotations
from buttress.files._s3 import S3BlobStore

__all__ = ["run"]

MiB: Final = 1024 * 1024
BIG: Final = 64 * MiB
SMALL: Final = 1024
COUNT: Final = 1000
PART: Final = 8 * MiB
ROUNDS: Final = 3
BOTO3: Final = "S3BlobStore (boto3)"
OBSTORE_2: Final = "obstore, 2 parts of 8 MiB in flight"
OBSTORE_12: Final = "obstore defaults (12 parts of 5 MiB)"
ANCHORS: Final = [OBSTORE_2, OBSTORE_12]
CHUNK: Final = os.urandom(MiB)
SMALL_BODY: Final = os.urandom(SMALL)

Sample = tuple[float, float]
"""Seconds of wall time and of this process's CPU time for one operation."""


def _obstore() -> Any:
    try:
        return importlib.import_module("obstore")
    except ModuleNotFoundError:
        return None


def _chunks() -> Iterator[bytes]:
    for _ in range(BIG // MiB):
        yield CHUNK


def _timed(operation: Callable[[], object], count: int = 1) -> Sample:
    wall, cpu = time.perf_counter(), time.process_time()
    operation()
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


class _Candidates:
    """The same four operations for each client, on one bucket of one moto server."""

    def __init__(self, endpoint: str, obstore: Any) -> None:
        client = s3_client(endpoint, retries={"max_attempts": 3, "mode": "standard"})
        self.bucket = create_bucket(client)
        self.client = client
        self.store = S3BlobStore(self.bucket, client=client, part_size=PART)
        self.obstore = obstore
        self.ob_store = None
        if obstore is not None:
            self.ob_store = obstore.store.S3Store(
                self.bucket,
                endpoint=endpoint,
                region=REGION,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
                virtual_hosted_style_request=False,
                client_options={"allow_http": True},
            )
        self.small_keys = [f"small/{index:04d}" for index in range(COUNT)]
        for key in self.small_keys:
            client.put_object(Bucket=self.bucket, Key=key, Body=SMALL_BODY)
        writer = self.store.writer("big")
        for chunk in _chunks():
            writer.write(chunk)
        writer.commit()

    def _drop(self, prefix: str) -> None:
        for key in list(self.store.keys(prefix)):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def boto3_up(self) -> Sample:
        def upload() -> None:
            writer = self.store.writer(f"up/{uuid.uuid4().hex}")
            for chunk in _chunks():
                writer.write(chunk)
            writer.commit()

        sample = _timed(upload)
        self._drop("up/")
        return sample

    def obstore_up(self, concurrency: int, part: int) -> Sample:
        def upload() -> None:
            key = f"up/{uuid.uuid4().hex}"
            self.obstore.put(self.ob_store, key, _chunks(), chunk_size=part, max_concurrency=concurrency)

        sample = _timed(upload)
        self._drop("up/")
        return sample

    def boto3_peak(self) -> int:
        """Bytes tracemalloc saw at most during one 64 MiB upload."""
        tracemalloc.start()
        try:
            self.boto3_up()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def boto3_down(self) -> Sample:
        return _timed(lambda: sum(len(chunk) for chunk in self.store.read("big", chunk_size=MiB)))

    def obstore_down(self) -> Sample:
        def download() -> int:
            result = self.obstore.get(self.ob_store, "big")
            return sum(len(chunk) for chunk in result.stream(min_chunk_size=MiB))

        return _timed(download)

    def boto3_small_up(self) -> Sample:
        def upload() -> None:
            for _ in range(COUNT):
                writer = self.store.writer(f"sup/{uuid.uuid4().hex}")
                writer.write(SMALL_BODY)
                writer.commit()

        sample = _timed(upload, COUNT)
        self._drop("sup/")
        return sample

    def obstore_small_up(self) -> Sample:
        def upload() -> None:
            for _ in range(COUNT):
                self.obstore.put(self.ob_store, f"sup/{uuid.uuid4().hex}", SMALL_BODY, mode="create")

        sample = _timed(upload, COUNT)
        self._drop("sup/")
        return sample

    def boto3_small_down(self) -> Sample:
        return _timed(lambda: [b"".join(self.store.read(key)) for key in self.small_keys], COUNT)

    def obstore_small_down(self) -> Sample:
        return _timed(
            lambda: [self.obstore.get(self.ob_store, key).bytes() for key in self.small_keys], COUNT
        )


def _measure(candidates: _Candidates) -> dict[str, dict[str, Sample]]:
    """Per row, per candidate: the median wall and CPU seconds of ``ROUNDS`` interleaved samples."""
    rows: dict[str, dict[str, Callable[[], Sample]]] = {
        "upload 64 MiB (1 MiB chunks)": {
            BOTO3: candidates.boto3_up,
            OBSTORE_2: lambda: candidates.obstore_up(2, PART),
            OBSTORE_12: lambda: candidates.obstore_up(12, 5 * MiB),
        },
        "download 64 MiB (streamed)": {BOTO3: candidates.boto3_down, OBSTORE_2: candidates.obstore_down},
        f"put 1 KiB, per object of {COUNT:,}": {
            BOTO3: candidates.boto3_small_up,
            OBSTORE_2: candidates.obstore_small_up,
        },
        f"get 1 KiB, per object of {COUNT:,}": {
            BOTO3: candidates.boto3_small_down,
            OBSTORE_2: candidates.obstore_small_down,
        },
    }
    results: dict[str, dict[str, Sample]] = {}
    for operation, every in rows.items():
        measures = every if candidates.obstore is not None else {BOTO3: every[BOTO3]}
        samples: dict[str, list[Sample]] = {name: [] for name in measures}
        for name in rotations(list(measures), ROUNDS):
            samples[name].append(measures[name]())
        results[operation] = {
            name: (_median([s[0] for s in values]), _median([s[1] for s in values]))
            for name, values in samples.items()
        }
    return results


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run() -> Table:
    obstore = _obstore()
    with tempfile.TemporaryDirectory() as scratch, MotoProcess(Path(scratch) / "moto.log") as server:
        candidates = _Candidates(server.endpoint, obstore)
        results = _measure(candidates)
        peak = candidates.boto3_peak()
    rows: list[Row] = []
    for operation, by_name in results.items():
        for label, index in (("wall", 0), ("client CPU", 1)):
            anchors = {name: sample[index] * 1e9 for name, sample in by_name.items() if name != BOTO3}
            rows.append(Row(f"{operation}, {label}", by_name[BOTO3][index] * 1e9, anchors))
    return Table(
        title="Files: S3 client (against moto)",
        anchors=ANCHORS,
        rows=rows,
        notes=_notes(results, obstore, peak),
    )


def _rates(results: dict[str, dict[str, Sample]]) -> str:
    up, down = results["upload 64 MiB (1 MiB chunks)"], results["download 64 MiB (streamed)"]
    rates = [f"{name} {BIG / MiB / up[name][0]:.0f} MiB/s up" for name in up]
    rates += [f"{name} {BIG / MiB / down[name][0]:.0f} MiB/s down" for name in down]
    return "; ".join(rates)


def _notes(results: dict[str, dict[str, Sample]], obstore: Any, peak: int) -> list[str]:
    notes = [
        (
            f"Throughput against moto 5.2 (in a child process on 127.0.0.1): {_rates(results)}. moto is a "
            "Python server and dominates the wall times: they rank the clients against moto, not against S3. "
            "The client CPU rows (this process's CPU time per operation, every thread) are each client's own "
            f"cost. One S3BlobStore upload of 64 MiB (8 MiB parts) peaked at {peak / MiB:.1f} MiB traced by "
            "tracemalloc."
        ),
        (
            f"Median of {ROUNDS} interleaved rounds. S3BlobStore uploads one 8 MiB part at a time (two parts "
            "in memory at most) and commits with If-None-Match; obstore's small puts use mode='create' (the "
            "same conditional write), its multipart uploads run parts concurrently and do not condition the "
            "complete. Checksums are each client's default (boto3 sends CRC32)."
        ),
    ]
    notes.append(
        "Why not obstore, faster per request as it is: its put(mode='create') (the never-overwrite write) "
        "is a single PUT that holds the whole object in memory (its docs say so; a 12 MiB create was one "
        "PUT here), and it has no call to list or abort incomplete multipart uploads, which the leftover "
        "sweep needs."
    )
    if obstore is None:
        notes.append("obstore is not installed: its columns read n/a (`uv pip install obstore` to compare).")
    else:
        notes.append(f"obstore {obstore.__version__}, installed ad hoc for this run; not a dependency.")
    return notes
