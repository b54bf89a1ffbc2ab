"""Files in and out: uploads (``POST /files``), a user's files and their bytes (owner or signed
URL), and what every view of a request shows of its files (``links``). The SQL is
``libs.files.uploads``'s; the bytes are in the blob store (``libs.blobs``)."""
