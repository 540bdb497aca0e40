"""A real OpenSSH server on 127.0.0.1 for the remote-device tests.

Debian's ``sshd`` runs in the foreground on a free port with a throw-away host key, a throw-away
user key and a config file of its own in a temporary folder: nothing of the system's SSH setup is
read or changed. (Run as root, OpenSSH insists on its privilege-separation folder
``/run/sshd`` existing, which is what Debian's init script creates; it is made when missing.)
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pakd-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    host_key: Path
    user_key: Path
    known_hosts: Path
    proc: subprocess.Popen | None = None

    @classmethod
    def create(cls, root: Path) -> SshServer:
        if not Path(SSHD).is_file():
            raise RuntimeError(
                "the OpenSSH server is not installed: sudo apt-get install -y openssh-server (make test installs it)"
            )
        root.mkdir(parents=True, exist_ok=True)
        host_key = keygen(root / "host_ed25519")
        user_key = keygen(root / "user_ed25519")
        shutil.copy(user_key.with_suffix(".pub"), root / "authorized_keys")
        os.chmod(root / "authorized_keys", 0o600)
        port = free_port()
        known = root / "known_hosts"
        pub = host_key.with_suffix(".pub").read_text().split()
        known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        server = cls(root, port, getpass.getuser(), host_key, user_key, known)
        server.start()
        return server

    def config(self) -> Path:
        cfg = self.root / "sshd_config"
        cfg.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "LogLevel ERROR",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "",
                ]
            )
        )
        return cfg

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = open(self.root / "sshd.log", "ab")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config())], stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def kill(self) -> None:
        """Kill the server and every session it has open (a board losing power)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        victims = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in victims:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()

    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def devices_toml(self, name: str = "board", workdir: str | Path = "pakd-bench", **extra: object) -> str:
        """A devices.toml entry for this server (``extra`` adds or replaces keys)."""
        fields: dict[str, object] = {
            "target": "host",
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.user_key),
            "known_hosts": str(self.known_hosts),
            "workdir": str(workdir),
            "connect_timeout": 5,
            "ssh_config": False,
        }
        fields.update(extra)

        def value(v: object) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            return (
                str(v) if isinstance(v, (int, float)) else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            )

        return f"[devices.{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in fields.items())
