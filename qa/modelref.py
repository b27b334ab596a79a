"""Model references (QA_READER, QA_EMBEDDER): a local folder or a Hugging Face hub id, told apart
before anything is loaded, so a typo in a path fails at once and an offline hub id within seconds
instead of after minutes of retries."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import ModelLoadError

HUB_HOST = "huggingface.co"
PROBE_SECONDS = 3.0


def looks_like_path(ref: str) -> bool:
    """A hub id is "name" or "owner/name"; anything else that reads like a path is taken for one:
    ./x, /x, ~/x, a\\x, a/b/c, anything under models/, or whose first part is a local folder
    ("models/readr" is a mistyped folder, not a hub id)."""
    if ref.startswith((".", "/", "~", "models/")) or "\\" in ref or ref.count("/") > 1:
        return True
    path = Path(ref)
    return path.exists() or (len(path.parts) > 1 and Path(path.parts[0]).is_dir())


def check_folder(ref: str, what: str) -> Path:
    """The folder a local-looking reference names; ModelLoadError naming it if it is not there."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"{what} folder not found: {path}", public=f"the {what} is missing on the server")
    return path


def hub_kwargs(ref: str, what: str) -> dict:
    """from_pretrained() options for a hub id: local_files_only when it is cached and the hub cannot be
    reached; ModelLoadError within seconds when it is neither cached nor reachable."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    cached = _cached(ref)
    if offline:
        if cached:
            return {"local_files_only": True}
        raise ModelLoadError(f"{what} {ref!r} is not a local folder and not in the Hugging Face cache, and "
                             "HF_HUB_OFFLINE is set: give a local folder, or download it with the hub reachable",
                             public=f"the {what} is not available on the server")
    try:
        socket.create_connection((HUB_HOST, 443), timeout=PROBE_SECONDS).close()
    except OSError as err:
        if cached:
            return {"local_files_only": True}
        raise ModelLoadError(f"{what} {ref!r} looks like a Hugging Face hub id, but {HUB_HOST} cannot be reached "
                             f"({err.strerror or err}); give a local folder, or check the network",
                             public=f"the {what} is not available on the server") from None
    return {}


def _cached(ref: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(ref, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid id, an unreadable cache: either way not cached
        return False
