"""The only code that writes ``files`` and ``blobs``: uploads, a request's input files, its result
files, and their collection once nothing refers to them. Import the submodule that does what you
need (``libs.files.uploads``, ``libs.files.results``, ``libs.files.collect``)."""
