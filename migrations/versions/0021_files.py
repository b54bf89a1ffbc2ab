"""Files: blobs known to be stored (by sha256) and the files that refer to them (uploads, a
request's inputs, a job's results); offers may declare file inputs

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A blob is registered before (an upload) or when (a result) a file refers to it; recon
    # deletes a blob from the store, then its row, once no file has referred to it for a while
    # (touched_at). Every file names a registered blob.
    op.execute(
        """
        CREATE TABLE blobs (
            sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            size bigint NOT NULL CHECK (size >= 0),
            touched_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ix_blobs_touched_at ON blobs (touched_at)")
    # purpose: 'upload' (POST /files: the user's, until deleted or expires_at), 'input' (a
    # request's copy of an input, kept as long as the request's results), 'result' (a job's
    # output). A request's files go with its results when they expire.
    op.execute(
        """
        CREATE TABLE files (
            id text PRIMARY KEY CHECK (id ~ '^file-[0-9a-f]{32}$'),
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            sha256 text NOT NULL REFERENCES blobs (sha256),
            purpose text NOT NULL CHECK (purpose IN ('upload', 'input', 'result')),
            media_type text NOT NULL,
            bytes bigint NOT NULL CHECK (bytes >= 0),
            width int,
            height int,
            filename text,
            request_id uuid REFERENCES requests (id) ON DELETE CASCADE,
            step int,
            name text,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            CHECK ((purpose = 'upload') = (request_id IS NULL))
        )
        """
    )
    op.execute("CREATE INDEX ix_files_user_created ON files (user_id, created_at DESC, id)")
    op.execute("CREATE INDEX ix_files_request ON files (request_id) WHERE request_id IS NOT NULL")
    op.execute("CREATE INDEX ix_files_sha256 ON files (sha256)")
    op.execute(
        "CREATE INDEX ix_files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL"
    )
    # An offer's file inputs: {"name": {"types": [...], "max_bytes": n, "max_pixels": n}}.
    op.execute("ALTER TABLE offers ADD COLUMN files jsonb NOT NULL DEFAULT '{}'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE offers DROP COLUMN files")
    op.execute("DROP TABLE files")
    op.execute("DROP TABLE blobs")
