from datetime import datetime

from pydantic import BaseModel, Field


class FilesReport(BaseModel):
    blobs: int | None = Field(
        description="Blobs Postgres knows to be stored, as of the last collection; null before "
        "the first."
    )
    blob_bytes: int | None = Field(description="Their bytes, as of the last collection.")
    files: dict[str, int] | None = Field(
        description="Files by purpose (upload, input, result), as of the last collection."
    )
    last_collection_at: datetime | None = Field(
        description="When this replica last ran the collection of expired uploads and "
        "unreferenced blobs to its end."
    )
    last_orphan_sweep_at: datetime | None = Field(
        description="When this replica last swept the store for orphans (only the replica that "
        "holds the sweep does)."
    )
    uploads_expired: int = Field(description="Uploads deleted past expires_at since recon started.")
    blobs_collected: int = Field(
        description="Blobs this replica deleted from the store since it started (unreferenced "
        "and orphans)."
    )
    bytes_freed: int = Field(description="Their bytes.")
