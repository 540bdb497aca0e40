"""Devices to benchmark on: ``local`` (this machine), entries of ``devices.toml``, or an
``ssh://user@host:port`` URL.

```toml
[devices.pi4]
target = "rpi4"                       # a board from `pakd targets` (informative; bundles are
                                      # matched against the device's own `uname -m`)
host = "192.168.1.42"
port = 22                             # default 22
user = "pi"                           # default: ssh's default (your ssh config / login name)
identity_file = "~/.ssh/id_ed25519"   # default: ssh's default keys / agent
known_hosts = "~/.ssh/known_hosts"    # host keys are checked against this file
workdir = "pakd-bench"                # on the device, relative to the login's home
connect_timeout = 10                  # seconds to connect (TCP + SSH handshake)
command_timeout = 600                 # seconds any one remote command may take
accept_new_host_key = false           # true: trust a host key not yet in known_hosts (and record it)
ssh_config = true                     # false: ignore ~/.ssh/config (ssh -F none)
```
Every problem is one line naming the file and the key (:class:`DeviceError`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import PakdError

DEFAULT_DEVICES_FILE = Path("devices.toml")
LOCAL = "local"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEYS: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "host": (str,),
    "port": (int,),
    "user": (str,),
    "identity_file": (str,),
    "known_hosts": (str,),
    "workdir": (str,),
    "connect_timeout": (int, float),
    "command_timeout": (int, float),
    "accept_new_host_key": (bool,),
    "ssh_config": (bool,),
}


class DeviceError(PakdError):
    """A device that is unknown, badly described, unreachable or refused."""


@dataclass(frozen=True)
class Device:
    """Where a bundle runs. ``host is None`` means this machine (no SSH)."""

    name: str
    target: str | None = None
    host: str | None = None
    port: int = 22
    user: str | None = None
    identity_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    workdir: str = "pakd-bench"
    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    accept_new_host_key: bool = False
    ssh_config: bool = True

    @property
    def is_local(self) -> bool:
        return self.host is None

    def describe(self) -> str:
        if self.is_local:
            return f"{self.name} (this machine)"
        who = f"{self.user}@" if self.user else ""
        return f"{self.name} (ssh {who}{self.host}:{self.port})"


def local_device(workdir: Path | None = None) -> Device:
    """This machine: bundles are copied into a local work folder and run there."""
    from ..deploy.emulate import default_cache_dir

    return Device(name=LOCAL, target="host", workdir=str(workdir or default_cache_dir() / "device-local"))


def parse_ssh_url(url: str) -> Device:
    """``ssh://[user@]host[:port]`` -> a Device named after the URL."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise DeviceError(f"--device {url}: expected ssh://[user@]host[:port]")
    try:
        port = parts.port or 22
    except ValueError:
        raise DeviceError(f"--device {url}: the port is not a number in 1..65535") from None
    name = f"{parts.username + '@' if parts.username else ''}{parts.hostname}:{port}"
    return Device(name=name, host=parts.hostname, port=port, user=parts.username)


def load_devices(path: str | Path) -> dict[str, Device]:
    """Every device of a ``devices.toml`` file, validated."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise DeviceError(f"{p}: no such devices file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeviceError(f"{p}: not valid TOML ({exc})") from None
    unknown = set(data) - {"devices"}
    if unknown:
        raise DeviceError(f"{p}: unknown section [{_label(sorted(unknown)[0])}] (devices go in [devices.NAME])")
    table = data.get("devices") or {}
    if not isinstance(table, dict):
        raise DeviceError(f"{p}: devices must be tables [devices.NAME]")
    devices: dict[str, Device] = {}
    for name, entry in table.items():
        devices[name] = _device(p, name, entry)
    return devices


def _label(name: str) -> str:
    """A TOML key for a message on one line: as it is when plain, quoted otherwise."""
    return name if _NAME.match(name) else repr(name)


def _device(path: Path, name: str, entry: Any) -> Device:
    where = f"{path}: [devices.{_label(name)}]"
    if not _NAME.match(name) or name == LOCAL:
        raise DeviceError(f"{where}: bad device name (letters, digits, _ . -; 'local' is reserved)")
    if not isinstance(entry, dict):
        raise DeviceError(f"{where}: must be a table")
    for key, value in entry.items():
        if key not in _KEYS:
            raise DeviceError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        if not isinstance(value, _KEYS[key]) or (isinstance(value, bool) and bool not in _KEYS[key]):
            raise DeviceError(f"{where}: {key} must be {' or '.join(t.__name__ for t in _KEYS[key])}")
    if "host" not in entry:
        raise DeviceError(f"{where}: host is required")
    port = entry.get("port", 22)
    if not 1 <= port <= 65535:
        raise DeviceError(f"{where}: port must be in 1..65535")
    for key in ("connect_timeout", "command_timeout"):
        if key in entry and entry[key] <= 0:
            raise DeviceError(f"{where}: {key} must be > 0 seconds")
    if "target" in entry:
        from ..targets import load_target

        try:
            load_target(entry["target"])
        except PakdError as exc:
            raise DeviceError(f"{where}: target: {exc}") from None
    workdir = entry.get("workdir", "pakd-bench")
    if not workdir or "\n" in workdir or "'" in workdir:
        raise DeviceError(f"{where}: workdir must be a plain path")

    def rel(value: str | None) -> Path | None:
        if value is None:
            return None
        q = Path(value).expanduser()
        return q if q.is_absolute() else (path.parent / q)

    fields = dict(entry)
    fields["identity_file"] = rel(entry.get("identity_file"))
    if "known_hosts" in entry:
        fields["known_hosts"] = rel(entry["known_hosts"])
    return Device(name=name, **fields)


def resolve_device(spec: str, devices_file: str | Path | None = None, **overrides: Any) -> Device:
    """``local``, ``ssh://...`` or a name from the devices file (``devices.toml`` by default);
    ``overrides`` (non-None values) replace the device's own settings."""
    if spec == LOCAL:
        dev = local_device()
    elif spec.startswith("ssh://"):
        dev = parse_ssh_url(spec)
    else:
        path = Path(devices_file) if devices_file else DEFAULT_DEVICES_FILE
        if not path.is_file():
            raise DeviceError(
                f"--device {spec}: unknown device (no {path}; use local, ssh://user@host:port, "
                "or describe it in devices.toml)"
            )
        devices = load_devices(path)
        if spec not in devices:
            known = ", ".join(sorted(devices)) or "none"
            raise DeviceError(f"--device {spec}: not in {path} (devices there: {known})")
        dev = devices[spec]
    chosen = {k: v for k, v in overrides.items() if v is not None}
    for key in ("connect_timeout", "command_timeout"):
        if key in chosen and not chosen[key] > 0:
            raise DeviceError(f"--{key.replace('_', '-')} must be > 0 seconds, got {chosen[key]}")
    if chosen and not dev.is_local:
        dev = replace(dev, **chosen)
    return dev
