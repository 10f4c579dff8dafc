"""Whether a mapped path, symbolic links followed, stays inside a user's home.

``os.path.realpath`` answers it, but looks at every component from the filesystem root (one
``lstat`` and a Python step each: about 28 µs for a path eight levels deep, on every SFTP
operation that names a path). The home is resolved once, when the session starts; here only
the components below it are looked at, and the full ``realpath`` runs only when one of them
(or the home itself) is a symbolic link: the same answer in a few microseconds.
"""

from __future__ import annotations

import os
import stat


def resolves_inside(home: bytes, local: bytes) -> bool:
    """``local`` is ``home`` (resolved) or below it once every symbolic link is followed,
    as ``os.path.realpath`` resolves it. ``local`` is normalised (no ``.`` or ``..``
    components), as asyncssh's chroot mapping gives it."""
    if local == home:
        below: list[bytes] = []
    elif local.startswith(home + b"/"):
        below = local[len(home) + 1 :].split(b"/")
    else:
        return _real_inside(home, local)
    current = home
    for part in (None, *below):  # the home itself, then each component below it
        if part is not None:
            current += b"/" + part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return True  # realpath keeps a missing name, and what follows it, as written
        except OSError:
            return _real_inside(home, local)
        if stat.S_ISLNK(mode):
            return _real_inside(home, local)
    return True


def _real_inside(home: bytes, local: bytes) -> bool:
    real = os.path.realpath(local)
    return real == home or real.startswith(home + b"/")
