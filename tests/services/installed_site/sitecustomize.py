"""Loaded by the Python processes the tests start (``PYTHONPATH``, set in tests/conftest.py).

``rich`` comes into the test environment with schemathesis only; ``make install`` does not
install it. structlog imports it when it is there, which costs every mm-bronze process the
tests start about 0.3 s of CPU and changes how it renders exceptions. Hiding it runs those
processes as an installed mm-bronze runs.
"""

import sys

sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
