"""The ``hwnas`` command line: a thin click layer over the public API."""
