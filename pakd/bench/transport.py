"""Running commands and moving files on a device: this machine, or a board over SSH.

SSH goes through the **OpenSSH client** (``ssh``), not a Python SSH library: it is the client
every board and phone is set up for (your ``~/.ssh/config``, agents, ``ProxyJump``, hardware
keys all work unchanged), its host-key checking is the reference behaviour
(``StrictHostKeyChecking=yes``: an unknown key is refused; ``accept-new`` only with
``--accept-new-host-key``; a *changed* key is always refused), it needs nothing on the board
beyond ``sshd`` and a POSIX shell, and it adds no crypto code to PaKD. One master connection
per device is shared by all commands (``ControlMaster``), so a benchmark opens one TCP
connection, not one per file.

Files travel as a byte stream into ``cat`` (no sftp/scp subsystem needed on the board) and are
always checked afterwards with the device's own ``sha256sum``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .devices import Device, DeviceError


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class Transport(Protocol):
    device: Device

    def run(
        self, script: str, *, timeout: float | None = None, stdin: bytes | None = None, what: str = ""
    ) -> Result: ...

    def put(self, local: Path, remote_rel: str, *, what: str = "") -> None: ...

    def close(self) -> None: ...


def _quote_workdir(workdir: str) -> str:
    # "~/x" must stay expandable by the remote shell: quote only what follows "~/".
    if workdir == "~":
        return "~"
    if workdir.startswith("~/"):
        return "~/" + shlex.quote(workdir[2:])
    return shlex.quote(workdir)


class LocalTransport:
    """``local``: commands run here through ``sh`` in the device's work folder."""

    def __init__(self, device: Device):
        self.device = device
        self.root = Path(device.workdir).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def run(self, script: str, *, timeout: float | None = None, stdin: bytes | None = None, what: str = "") -> Result:
        limit = timeout or self.device.command_timeout
        try:
            r = subprocess.run(["sh", "-c", script], cwd=self.root, input=stdin, capture_output=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.device.name}: {what or 'command'} timed out after {limit:g} s") from None
        return Result(r.returncode, r.stdout, r.stderr.decode("utf-8", "replace"))

    def put(self, local: Path, remote_rel: str, *, what: str = "") -> None:
        dest = self.root / remote_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        shutil.copyfile(local, part)
        os.replace(part, dest)

    def close(self) -> None:
        pass


class SshTransport:
    """A device over SSH, through the OpenSSH client and one shared master connection."""

    def __init__(self, device: Device, ssh: str = "ssh"):
        if shutil.which(ssh) is None:
            raise DeviceError(
                f"{device.name}: the OpenSSH client is not installed (sudo apt-get install -y openssh-client)"
            )
        self.device = device
        self.ssh = ssh
        self._control_dir = tempfile.mkdtemp(prefix="pakd-ssh-")
        self._master_started = False

    # -- the ssh command line ------------------------------------------------------------------
    def _base(self) -> list[str]:
        d = self.device
        known = Path(d.known_hosts).expanduser()
        argv = [self.ssh]
        if not d.ssh_config:
            argv += ["-F", "none"]
        argv += [
            "-p",
            str(d.port),
            "-o",
            "BatchMode=yes",  # never prompt (passwords, host keys)
            "-o",
            f"StrictHostKeyChecking={'accept-new' if d.accept_new_host_key else 'yes'}",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            f"ConnectTimeout={max(1, int(round(d.connect_timeout)))}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control_dir}/%C",
            "-o",
            "ControlPersist=120",
            "-o",
            "LogLevel=ERROR",
        ]
        if d.identity_file is not None:
            argv += ["-i", str(Path(d.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if d.user:
            argv += ["-l", d.user]
        return argv + [d.host or ""]

    def _explain(self, stderr: str, what: str) -> DeviceError:
        d, s = self.device, stderr.strip()
        low = s.lower()
        known = Path(d.known_hosts).expanduser()
        if "remote host identification has changed" in low or "host key for" in low and "has changed" in low:
            return DeviceError(
                f"{d.name}: the host key of {d.host}:{d.port} does NOT match {known} (changed key: "
                "refused; if the board was reinstalled, remove its old line with ssh-keygen -R)"
            )
        if "host key verification failed" in low or "no ecdsa host key is known" in low or "host key is known" in low:
            return DeviceError(
                f"{d.name}: the host key of {d.host}:{d.port} is not in {known}: refused (check the "
                "key and add it with ssh-keyscan, or pass --accept-new-host-key to trust it on first use)"
            )
        if "permission denied" in low:
            return DeviceError(
                f"{d.name}: SSH login refused for {d.user or 'the default user'}@{d.host} "
                "(set identity_file / user, or load the key into your agent)"
            )
        if "connection refused" in low:
            return DeviceError(f"{d.name}: cannot connect to {d.host}:{d.port} (connection refused: is sshd running?)")
        if "timed out" in low or "timeout" in low:
            return DeviceError(
                f"{d.name}: cannot connect to {d.host}:{d.port} within {d.connect_timeout:g} s (timed out)"
            )
        if "could not resolve" in low or "name or service not known" in low:
            return DeviceError(f"{d.name}: unknown host {d.host}")
        if "no route" in low or "network is unreachable" in low:
            return DeviceError(f"{d.name}: {d.host} is unreachable ({s.splitlines()[-1] if s else 'no route'})")
        if "closed by remote host" in low or "connection reset" in low or "broken pipe" in low or "closed" in low:
            return DeviceError(f"{d.name}: lost the connection to {d.host}:{d.port} during {what or 'a command'}")
        if not s:  # a multiplexed session whose master connection died says nothing
            return DeviceError(f"{d.name}: lost the connection to {d.host}:{d.port} during {what or 'a command'}")
        return DeviceError(f"{d.name}: ssh failed during {what or 'a command'}: {s.splitlines()[-1]}")

    def run(self, script: str, *, timeout: float | None = None, stdin: bytes | None = None, what: str = "") -> Result:
        d = self.device
        remote = f"mkdir -p {_quote_workdir(d.workdir)} && cd {_quote_workdir(d.workdir)} && {script}"
        limit = timeout or d.command_timeout
        if not self._master_started:
            limit = max(limit, d.connect_timeout + 5)
        try:
            r = subprocess.run(
                self._base() + ["--", remote],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=limit,
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{d.name}: {what or 'command'} timed out after {limit:g} s") from None
        stderr = r.stderr.decode("utf-8", "replace")
        if r.returncode == 255:
            raise self._explain(stderr, what)
        self._master_started = True
        return Result(r.returncode, r.stdout, stderr)

    def put(self, local: Path, remote_rel: str, *, what: str = "") -> None:
        q = shlex.quote(remote_rel)
        part = shlex.quote(remote_rel + ".part")
        data = self._upload_bytes(Path(local))
        r = self.run(
            f'mkdir -p "$(dirname {q})" && cat > {part} && mv -f {part} {q}',
            stdin=data,
            what=what or f"uploading {Path(local).name}",
        )
        if r.returncode != 0:
            raise DeviceError(f"{self.device.name}: could not write {remote_rel}: {r.stderr.strip()[-200:]}")

    def _upload_bytes(self, local: Path) -> bytes:
        """The bytes sent for a file (one place, so tests can corrupt a transfer)."""
        return local.read_bytes()

    def close(self) -> None:
        if self._master_started:
            subprocess.run(self._base()[:-1] + ["-O", "exit", self.device.host or ""], capture_output=True, timeout=10)
        shutil.rmtree(self._control_dir, ignore_errors=True)


def connect(device: Device) -> Transport:
    return LocalTransport(device) if device.is_local else SshTransport(device)
