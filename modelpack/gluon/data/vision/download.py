"""Fetching a dataset file as MXNet 1.9.1 does: from its Gluon repository
(``https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/gluon/dataset/<name>/<file>``, or
the mirror named by ``MXNET_GLUON_REPO``), checked against the SHA-1 MXNet records for it.

The download goes to a temporary file beside the target and is renamed into place only once
its SHA-1 matches, so a folder never holds a partial or wrong file under the real name. A
file already in the folder is used as it is (the readers check its structure).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ....errors import IntegrityError, MissingFileError, UsageError

__all__ = ["DEFAULT_REPO", "repo_url", "file_url", "data_dir", "obtain", "download"]

DEFAULT_REPO = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/"
# No dataset file MXNet hosts is larger (CIFAR-100's archive is 161 MB); a longer stream is refused.
MAX_DOWNLOAD = 1 << 30
TIMEOUT_SECONDS = 60.0


def repo_url() -> str:
    """MXNet's repository base URL, ``MXNET_GLUON_REPO`` when set (always ending in ``/``)."""
    url = os.environ.get("MXNET_GLUON_REPO") or DEFAULT_REPO
    return url if url.endswith("/") else url + "/"


def file_url(namespace: str, filename: str) -> str:
    """Where MXNet downloads ``filename`` of dataset ``namespace`` (``fashion-mnist``, ...)."""
    return f"{repo_url()}gluon/dataset/{namespace}/{filename}"


def data_dir() -> Path:
    """MXNet's data folder: ``$MXNET_HOME``, else ``~/.mxnet``."""
    return Path(os.environ.get("MXNET_HOME") or os.path.join("~", ".mxnet")).expanduser()


def obtain(root: Path, namespace: str, filename: str, sha1: str) -> Path:
    """``root/filename``: the file there, else downloaded from MXNet's repository."""
    path = root / filename
    if path.is_file():
        return path
    download(file_url(namespace, filename), path, sha1)
    return path


def download(url: str, path: Path, sha1: str) -> None:
    """Save ``url`` as ``path`` if its SHA-1 is ``sha1``; else keep nothing and raise."""
    # Imported here: urllib.request costs an import most programs never need.
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{url}: MXNET_GLUON_REPO must be an http:// or https:// URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    digest, size = hashlib.sha1(usedforsecurity=False), 0
    try:
        try:
            # the scheme is checked above: urlopen would also open file: and ftp: URLs
            response_cm = urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS)  # noqa: S310
            with response_cm as response, open(temporary, "wb") as out:
                while chunk := response.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise IntegrityError(f"{url}: more than {MAX_DOWNLOAD} bytes, not a dataset file; "
                                             f"nothing was saved as {path}")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                      else getattr(exc, "reason", None) or exc)
            raise MissingFileError(
                str(path), f"not found, and downloading it from {url} failed ({reason})",
                f"place {path.name} in {path.parent} (MXNet's file from that URL), or set MXNET_GLUON_REPO "
                "to a mirror of MXNet's repository",
            ) from exc
        found = digest.hexdigest()
        if found != sha1:
            raise IntegrityError(f"{url}: the downloaded file's SHA-1 is {found}, expected {sha1} (MXNet's); "
                                 f"it was not kept as {path}. If MXNET_GLUON_REPO names a mirror, it may "
                                 "be outdated; else retry the download")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
