"""Files as recon keeps them: expired uploads deleted, blobs nothing refers to collected from the
store (``libs.files.collect``), orphans swept, and the figures for ``/health`` and the metrics."""
