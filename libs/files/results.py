"""Result files, registered by the statement that records the success that returned them.

A worker stores a file result in the blob store and puts its ``FileRef`` (as JSON) in the results
list, at index ``i``. When the success is recorded, the same statement upserts the blob's row
(``touched_at = now()``: recon's collection leaves it alone for a grace period) and inserts the
file's row (purpose ``result``, the request's user, ``name`` = ``i`` as text). A second delivery of
the same result records nothing: the request (or step) is no longer open, so its recording
statement passes no row to this fragment; and the file's id is the same for every attempt
(``result_file_id``), so a row already there is kept (ON CONFLICT DO NOTHING).

The ``files`` rows refer to ``blobs`` rows inserted by a sibling CTE of the same statement:
Postgres checks a (non-deferred) foreign key at the end of the statement, when both are written.
"""

from __future__ import annotations

# A reference the tables would refuse is skipped rather than failing the statement, which records
# a whole batch of outcomes: its request is recorded, its file is not (and cannot be served). The
# worker writes references through ``FileRef``, so none is expected.
_WELL_FORMED = """ref->>'id' ~ '^file-[0-9a-f]{32}$' AND ref->>'sha256' ~ '^[0-9a-f]{64}$'
      AND jsonb_typeof(ref->'media_type') = 'string' AND ref->>'bytes' ~ '^[0-9]{1,15}$'"""


def register(source: str, *, name: str = "result_files") -> str:
    """CTEs (the last named ``name``, returning the ids of the files it inserted) that register
    the file results of ``source``, a relation of ``user_id, request_id, step, results`` (``step``
    null for a single-offer request; ``results`` a jsonb array, or null), to splice into the
    statement that records those successes. Elements that are not file references are skipped."""
    return f"""{name}_elements AS (
    SELECT s.user_id, s.request_id, s.step, (e.i - 1)::text AS name, e.ref
    FROM {source} s
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(s.results) = 'array' THEN s.results ELSE '[]'::jsonb END
    ) WITH ORDINALITY AS e(ref, i)
    WHERE jsonb_typeof(e.ref) = 'object' AND e.ref->>'type' = 'file'
), {name}_refs AS (
    SELECT user_id, request_id, step, name, ref->>'id' AS id, ref->>'sha256' AS sha256,
           ref->>'media_type' AS media_type, (ref->>'bytes')::bigint AS bytes,
           CASE WHEN ref->>'width' ~ '^[1-9][0-9]{{0,8}}$' THEN (ref->>'width')::int END AS width,
           CASE WHEN ref->>'height' ~ '^[1-9][0-9]{{0,8}}$' THEN (ref->>'height')::int END
               AS height
    FROM {name}_elements
    WHERE {_WELL_FORMED}
), {name}_blobs AS (
    INSERT INTO blobs (sha256, size, touched_at)
    SELECT DISTINCT ON (r.sha256) r.sha256, r.bytes, now()
    FROM {name}_refs r
    ORDER BY r.sha256
    ON CONFLICT (sha256) DO UPDATE SET touched_at = now()
    RETURNING sha256
), {name} AS (
    INSERT INTO files (id, user_id, sha256, purpose, media_type, bytes, width, height,
                       request_id, step, name)
    SELECT r.id, r.user_id, r.sha256, 'result', r.media_type, r.bytes, r.width, r.height,
           r.request_id, r.step, r.name
    FROM {name}_refs r
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)"""
