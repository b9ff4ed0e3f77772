"""The demo's uploads: seeded episodes of allowed types, some re-uploads, and a few the store refuses."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Any, Final

import httpx

__all__ = ["SHOWS", "Episode", "make_batch", "mp3", "upload_all", "wav"]

SHOWS: Final = ("morning-brief", "deep-dive", "night-owl")


@dataclass(frozen=True, slots=True)
class Episode:
    """One upload: where it goes, what it carries, and what the demo expects the app to say."""

    show: str
    name: str
    data: bytes
    priority: int
    expect: str
    """``accepted``, or the refusal: ``too_large``, ``wrong_type``, ``over_quota``."""


def wav(size: int, seed: int) -> bytes:
    """A WAV header over ``size`` seeded bytes of 8-bit mono samples."""
    body = random.Random(seed).randbytes(size)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    return (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", size) + body
    )


def mp3(size: int, seed: int) -> bytes:
    """An ID3 tag and an MPEG frame header before ``size`` seeded bytes."""
    return b"ID3\x03\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00" + random.Random(seed).randbytes(size)


def make_batch(count: int, seed: int, *, max_size: int) -> list[Episode]:
    """``count`` accepted episodes (every fifth re-uploads an earlier one's bytes), then three refusals.

    The refusals: a file one byte over ``max_size``, an executable named ``.mp3``, and a show's upload past
    its quota (the caller gives that show a quota smaller than two of these files).
    """
    rng = random.Random(seed)
    episodes: list[Episode] = []
    for n in range(count):
        show = SHOWS[n % len(SHOWS)]
        if n % 5 == 4:
            data = episodes[n - 3].data  # the same bytes again: the transcript comes from the cache
        else:
            maker = wav if n % 2 == 0 else mp3
            data = maker(rng.randrange(20_000, 120_000), seed * 1000 + n)
        kind = "wav" if data.startswith(b"RIFF") else "mp3"
        episodes.append(Episode(show, f"{show}-{n + 1:03d}.{kind}", data, rng.randrange(10), "accepted"))
    big = mp3(max_size, seed)
    elf = b"\x7fELF\x02\x01\x01" + bytes(9) + random.Random(seed).randbytes(4000)
    quota = wav(1_600_000, seed + 1)
    episodes += [
        Episode(SHOWS[0], "full-season.mp3", big, 0, "too_large"),
        Episode(SHOWS[1], "episode.mp3", elf, 0, "wrong_type"),
        Episode("guest-spot", "guest-1.wav", quota, 0, "accepted"),
        Episode("guest-spot", "guest-2.wav", quota, 0, "over_quota"),
    ]
    return episodes


def upload_all(
    client: httpx.Client, batch: list[Episode]
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Upload each episode; the accepted ones by file id, and the refusals counted by error code."""
    accepted: dict[str, dict[str, Any]] = {}
    refused: dict[str, int] = {}
    for episode in batch:
        answer = client.post(
            f"/shows/{episode.show}/episodes",
            files={"episode": (episode.name, episode.data)},
            data={"priority": str(episode.priority)},
        )
        if answer.status_code == 202:
            accepted[answer.json()["file"]] = {**answer.json(), "name": episode.name, "show": episode.show}
        else:
            code = answer.json().get("error_code", str(answer.status_code))
            refused[code] = refused.get(code, 0) + 1
    return accepted, refused
