"""``mm-bronze storage compression-report``: how well stored payloads compress, and which
``storage.compression`` to choose."""
