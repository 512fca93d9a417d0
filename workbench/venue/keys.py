"""API keys of the simulated venue and the keys file that ``workbench venue`` writes.

The file is JSON ``{"api_key", "api_secret", "rest", "stream", "ws_api"}``, created readable and writable by the
user only (mode 0600, written to a temporary file in the same folder and renamed, so no other user ever sees a
partial or wider-open file). The secret never appears in a repr, a log line or printed output.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from workbench.exceptions import ConfigError

__all__ = ["ApiKey", "new_api_key", "write_keys_file", "read_keys_file"]


@dataclass(frozen=True)
class ApiKey:
    """An API key of one venue account. ``secret`` is excluded from repr and comparisons print nothing of it."""

    key: str
    secret: str = field(repr=False)
    account: int = 1

    def __str__(self) -> str:
        return f"ApiKey({self.key[:6]}..., account={self.account})"


def new_api_key(account: int = 1) -> ApiKey:
    """A fresh random key pair (64 hex characters each, like Binance's)."""
    return ApiKey(secrets.token_hex(32), secrets.token_hex(32), account)


def write_keys_file(path: str | Path, key: ApiKey, *, rest: str, stream: str, ws_api: str) -> Path:
    """Write the keys file with mode 0600; returns its path."""
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(
        {"api_key": key.key, "api_secret": key.secret, "rest": rest, "stream": stream, "ws_api": ws_api}, indent=2
    )
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_keys_file(path: str | Path) -> tuple[ApiKey, dict[str, str]]:
    """The key and the URLs (``rest``, ``stream``, ``ws_api``) of a keys file; ConfigError if it is not one."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
        key = ApiKey(str(data["api_key"]), str(data["api_secret"]))
        urls = {k: str(data[k]) for k in ("rest", "stream", "ws_api")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a workbench keys file ({exc.__class__.__name__})") from None
    return key, urls
