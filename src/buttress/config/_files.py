"""The ``files`` section of the settings: where files live, their limits, quotas and upkeep.

Metadata and quota counters live in the database of ``BUTTRESS_DATABASE_URL`` (the embedded SQLite file
when unset); the bytes live under ``url``: a local directory, or ``s3://bucket/prefix`` on any
S3-compatible store. S3 credentials come from the usual AWS sources (environment, profile, instance role),
never from these settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ByteSize, ConfigDict, Field

__all__ = ["FilesSettings"]


class FilesSettings(BaseModel):
    """Where ``buttress.files`` keeps bytes, what it accepts, and how it cleans up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        default="buttress-files",
        min_length=1,
        description="Where the bytes live: a directory (created if missing), or s3://bucket/prefix.",
        examples=["s3://uploads/podcasts"],
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="An S3-compatible endpoint (MinIO, Ceph, R2...); unset: AWS's own.",
        examples=["http://127.0.0.1:9000"],
    )
    s3_region: str | None = Field(
        default=None,
        description="The S3 region; unset: boto3's default chain (AWS_REGION, profile).",
        examples=["eu-west-2"],
    )
    max_size: ByteSize = Field(
        default=ByteSize(100 * 1024 * 1024),
        gt=0,
        description="Largest file a save accepts unless the call says otherwise (bytes, or 500MB, 2GiB).",
        examples=["500MB"],
    )
    quota: ByteSize | None = Field(
        default=None,
        gt=0,
        description="Bytes all stored files (archived included) may take together; unset: no global quota.",
        examples=["10GB"],
    )
    owner_quota: ByteSize | None = Field(
        default=None,
        gt=0,
        description="Bytes each owner's files may take unless set_quota gave that owner another figure.",
        examples=["1GB"],
    )
    allowed_types: tuple[str, ...] = Field(
        default=(),
        description="Content types a save accepts by default (image/png, image/*); empty: any type but "
        "executables and scripts, which must be allowed by name.",
        examples=[["image/*", "audio/mpeg", "application/pdf"]],
    )
    archive_url: str | None = Field(
        default=None,
        description="Where archived files go: a directory or s3://bucket/prefix; unset: archive/ beside "
        "the files.",
        examples=["s3://cold-archive/podcasts"],
    )
    archive_compress: bool = Field(
        default=True,
        description="Gzip files as they are archived (restore unzips them; the sha256 stays the original's).",
        examples=[False],
    )
    reservation_ttl: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a save's quota reservation outlives its last byte; a crashed save's space and "
        "temp data are reclaimed after it (at once on the same host when the process is gone).",
        examples=[60],
    )
    part_size: ByteSize = Field(
        default=ByteSize(8 * 1024 * 1024),
        ge=5 * 1024 * 1024,
        description="S3 multipart part size; a save holds at most two parts in memory.",
        examples=["16MiB"],
    )
    cleanup_cron: str = Field(
        default="17 * * * *",
        min_length=1,
        description="When the scheduled cleanup runs (retention, leftovers, expired reservations).",
        examples=["*/10 * * * *"],
    )
    auto_migrate: bool = Field(
        default=True,
        description="Create or upgrade buttress's file tables on first use (buttress db upgrade does too).",
        examples=[False],
    )
