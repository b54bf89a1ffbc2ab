"""The blob store: files' bytes, content-addressed by sha256, on the local filesystem (the
default, under ``.relai/blobs``) or in an S3-compatible bucket, through one interface
(``obstore``). Postgres knows which blobs are referenced (``libs.files``); the store only keeps
bytes."""

from libs.blobs.images import ImageInfo, NotAnImage, inspect_image
from libs.blobs.store import BlobMeta, BlobStore, StoredBlob, open_store, sha256_of

__all__ = [
    "BlobMeta",
    "BlobStore",
    "ImageInfo",
    "NotAnImage",
    "StoredBlob",
    "inspect_image",
    "open_store",
    "sha256_of",
]
