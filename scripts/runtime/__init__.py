"""The runtime directory (WEIR_RUNTIME_DIR) every Weir process on a machine shares: its layout
(`layout.py`), the admin token kept in it (`token.py`) and the devices sidecars run on
(`devices.py`). A bottom layer, beside `scripts.release`: it imports no other Weir package."""

from scripts.runtime.devices import detect_gpus, resolve_devices
from scripts.runtime.layout import RuntimeDir, default_runtime_dir
from scripts.runtime.token import TOKEN_ENV, TokenError, ensure_token, read_token

__all__ = [
    "TOKEN_ENV",
    "RuntimeDir",
    "TokenError",
    "default_runtime_dir",
    "detect_gpus",
    "ensure_token",
    "read_token",
    "resolve_devices",
]
