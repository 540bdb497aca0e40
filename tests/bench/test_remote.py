"""`pakd bench BUNDLE... --device`: bundles benchmarked on a "remote device" that is a real
OpenSSH server on 127.0.0.1 (tests/bench/sshd.py), and on `local`.

Faults are real too: the server is killed in the middle of a benchmark, the host key is wrong or
unknown, the host does not answer, a file is corrupted on its way to the device."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import torch

from pakd.bench.devices import Device, DeviceError, load_devices, parse_ssh_url, resolve_device
from pakd.bench.remote import BenchPlan, bench_bundles, compare, describe_bundle
from pakd.bench.results import open_store, read_rows
from pakd.bench.transport import SshTransport
from pakd.deploy.build import BuildConfig, build
from pakd.modelio import save_model
from pakd.models import build_model
from tests.bench.sshd import SshServer
from tests.conftest import run_cli
from tests.deploy.conftest import require_target, shared_build_cache

pytestmark = pytest.mark.slow  # a real sshd, bundles built and timed

PLAN = BenchPlan(threads=("1", "all"), runs=2, repeats=20, warmup=2, min_time_s=0.05)


def _model(root: Path, seed: int, **args) -> Path:
    torch.manual_seed(seed)
    model = build_model("lenet5", **args)
    spec = {"model": {"name": "lenet5", "args": args}, "data": {"name": "fashion-mnist", "input_shape": [1, 28, 28]}}
    return save_model(root, model, spec)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A host bundle of a LeNet-5 "teacher" and of a pruned "student" that sits in a compress run
    folder (so its manifest says role=student)."""
    root = tmp_path_factory.mktemp("remote-bundles")
    cache = shared_build_cache(tmp_path_factory)
    host = require_target("host")
    teacher = _model(root / "teacher", 0)
    run = root / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"teacher": str(teacher)}))
    student = _model(run / "stage-1", 1)
    from safetensors.torch import load_file, save_file

    weights = load_file(student / "model.safetensors")
    for v in weights.values():
        if v.dim() > 1:
            v[v.abs() < v.abs().flatten().quantile(0.9)] = 0
    save_file(weights, student / "model.safetensors")
    out = {}
    for name, src in (("teacher", teacher), ("student", run)):
        out[name] = build(src, BuildConfig(target=host, out_dir=root / f"host-{name}", cache_dir=cache)).bundle.root
    return out


@pytest.fixture
def server(tmp_path):
    srv = SshServer.create(tmp_path / "sshd")
    yield srv
    srv.stop()


def _device(server: SshServer, tmp_path: Path, **extra) -> Device:
    (tmp_path / "devices.toml").write_text(server.devices_toml(workdir=str(tmp_path / "remote"), **extra))
    return load_devices(tmp_path / "devices.toml")["board"]


def test_manifest_roles(bundles):
    assert describe_bundle(bundles["teacher"]).role == "teacher"
    info = describe_bundle(bundles["student"])
    assert info.role == "student" and info.source.endswith("run/stage-1")


def test_ssh_upload_bench_and_store(bundles, server, tmp_path):
    dev = _device(server, tmp_path)
    with open_store(tmp_path / "results.db") as store:
        session, (out,) = bench_bundles([bundles["teacher"], bundles["student"]], [dev], PLAN, store)
        rows = store.rows(session=session)
    assert out.error is None, out.error
    cores = out.facts["cores"]
    assert out.facts["arch"] == "x86_64" and out.facts["os"] and out.facts["kernel"] and out.facts["ram_bytes"] > 0
    counts = sorted({1, cores})
    assert len(rows) == 2 * len(counts) * PLAN.runs == out.measured
    assert {r["threads"] for r in rows} == set(counts)
    for r in rows:
        assert r["golden_ok"] == 1 and r["golden_max_abs_diff"] <= 1e-4
        assert 0 < r["min_us"] <= r["median_us"] <= r["p90_us"] <= r["max_us"]
        assert r["iterations"] >= PLAN.repeats and r["peak_rss_kb"] > 0 and r["device"] == "board"
        assert r["facts"]["cores"] == cores
    # every file went over once; the device holds them by content
    blobs = list((tmp_path / "remote" / "blobs").iterdir())
    assert out.uploaded == len(blobs) and out.reused == 0
    assembled = tmp_path / "remote" / "bundles" / describe_bundle(bundles["student"]).sha256
    assert (assembled / "model.pakd").read_bytes() == (bundles["student"] / "model.pakd").read_bytes()
    comps = compare(rows)
    assert {c.threads for c in comps} == set(counts)
    t_bytes = (bundles["teacher"] / "model.pakd").stat().st_size
    s_bytes = (bundles["student"] / "model.pakd").stat().st_size
    assert comps[0].size_ratio == pytest.approx(t_bytes / s_bytes)
    assert all(c.median_ratio and c.p90_ratio and c.memory_ratio for c in comps)


def test_rerun_skips_stored_rows_and_sends_nothing(bundles, server, tmp_path):
    dev = _device(server, tmp_path)
    with open_store(tmp_path / "results.db") as store:
        s1, (first,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
        s2, (again,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
        assert s1 == s2 and again.error is None
        assert again.measured == 0 and again.skipped == first.measured and again.uploaded == 0
        s3, (fresh,) = bench_bundles([bundles["student"]], [dev], PLAN, store, fresh=True)
        assert s3 != s1 and fresh.measured == first.measured and fresh.uploaded == 0 and fresh.reused > 0


def test_server_killed_mid_run_keeps_rows_and_rerun_completes(bundles, server, tmp_path):
    dev = _device(server, tmp_path)
    slow = BenchPlan(threads=("1",), runs=4, repeats=20, warmup=2, min_time_s=1.0)
    killed = threading.Event()

    def progress(device: str, done: int, total: int, what: str) -> None:
        if what and done == 2 and not killed.is_set():
            killed.set()
            threading.Timer(0.3, server.kill).start()  # while the third timing runs on the device

    with open_store(tmp_path / "results.db") as store:
        session, (out,) = bench_bundles([bundles["student"]], [dev], slow, store, progress=progress)
        kept = store.rows(session=session)
    assert killed.is_set() and out.error is not None
    assert "lost the connection" in out.error or "cannot connect" in out.error, out.error
    assert len(kept) == 2 and out.measured == 2  # the run stopped at the lost board, rows kept
    server.start()  # the board is back
    with open_store(tmp_path / "results.db") as store:
        s2, (again,) = bench_bundles([bundles["student"]], [dev], slow, store)
        assert s2 == session and again.error is None
        assert again.skipped == 2 and again.measured == 2 and again.uploaded == 0
        assert len(store.rows(session=session)) == 4


def test_unknown_host_key_refused_unless_accepted(bundles, server, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    dev = _device(server, tmp_path, known_hosts=str(empty))
    with open_store(tmp_path / "results.db") as store:
        _, (out,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
        assert out.error and "not in" in out.error and "--accept-new-host-key" in out.error
        assert store.rows() == []
        dev = _device(server, tmp_path, known_hosts=str(empty), accept_new_host_key=True)
        _, (ok,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
    assert ok.error is None
    key = server.host_key.with_suffix(".pub").read_text().split()[1]
    assert key in empty.read_text()  # trusted on first use, and recorded


def test_wrong_host_key_refused_even_with_accept_new(bundles, server, tmp_path):
    from tests.bench.sshd import keygen

    other = keygen(tmp_path / "impostor").with_suffix(".pub").read_text().split()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{server.port} {other[0]} {other[1]}\n")
    for accept in (False, True):
        dev = _device(server, tmp_path, known_hosts=str(wrong), accept_new_host_key=accept)
        with open_store(tmp_path / "results.db") as store:
            _, (out,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
            assert out.error and "does NOT match" in out.error, out.error
            assert store.rows() == []


def test_unreachable_host_clear_error_within_timeout(bundles, tmp_path):
    # nothing listens on this port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    dev = Device(
        name="gone",
        host="127.0.0.1",
        port=closed,
        known_hosts=tmp_path / "kh",
        connect_timeout=2,
        ssh_config=False,
        workdir=str(tmp_path / "w"),
    )
    with open_store(tmp_path / "results.db") as store:
        _, (out,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
    assert out.error and "connection refused" in out.error
    # a host that accepts TCP but never answers SSH: the connect timeout applies
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    dev = Device(
        name="mute",
        host="127.0.0.1",
        port=silent.getsockname()[1],
        known_hosts=tmp_path / "kh",
        connect_timeout=2,
        ssh_config=False,
        workdir=str(tmp_path / "w"),
    )
    assert "ConnectTimeout=2" in SshTransport(dev)._base()  # the device's connect timeout reaches ssh
    try:
        with open_store(tmp_path / "results.db") as store:
            _, (out,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
    finally:
        silent.close()
    assert out.error and ("within 2 s (timed out)" in out.error or "lost the connection" in out.error), out.error


class _CorruptingSsh(SshTransport):
    """The real SSH transport, with one byte of every model file flipped on its way out."""

    def _upload_bytes(self, local: Path) -> bytes:
        data = bytearray(local.read_bytes())
        if local.name == "model.pakd":
            data[len(data) // 2] ^= 0x40
        return bytes(data)


def test_corrupted_in_transit_detected_and_removed(bundles, server, tmp_path, monkeypatch):
    import pakd.bench.transport as transport

    dev = _device(server, tmp_path)
    monkeypatch.setattr(transport, "SshTransport", _CorruptingSsh)
    with open_store(tmp_path / "results.db") as store:
        _, (out,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
        assert out.error and "hash mismatch" in out.error and "model.pakd" in out.error
        assert store.rows() == []
        model_sha = describe_bundle(bundles["student"]).files["model.pakd"]
        assert not (tmp_path / "remote" / "blobs" / model_sha).exists()  # the bad copy is gone
        monkeypatch.undo()
        _, (ok,) = bench_bundles([bundles["student"]], [dev], PLAN, store)
    assert ok.error is None and ok.uploaded == 1  # only the file that was bad goes again


def test_two_devices_in_parallel_and_local(bundles, server, tmp_path, monkeypatch):
    import pakd.bench.remote as remote

    dev = _device(server, tmp_path)
    local = Device(name="local", target="host", workdir=str(tmp_path / "local-device"))
    both_started = threading.Barrier(2, timeout=120)  # reached only when both devices are in flight at once
    met: list[str] = []
    real = remote.run_device

    def run_device(device, *args, **kwargs):
        both_started.wait()
        met.append(device.name)
        return real(device, *args, **kwargs)

    monkeypatch.setattr(remote, "run_device", run_device)
    with open_store(tmp_path / "results.db") as store:
        session, outs = bench_bundles([bundles["teacher"], bundles["student"]], [dev, local], PLAN, store)
        rows = store.rows(session=session)
    assert sorted(met) == ["board", "local"]  # each device's thread passed the barrier: they ran in parallel
    assert [o.error for o in outs] == [None, None]
    assert {r["device"] for r in rows} == {"board", "local"}
    assert {c.device for c in compare(rows)} == {"board", "local"}


def test_cli_bench_and_results(bundles, server, tmp_path):
    (tmp_path / "devices.toml").write_text(server.devices_toml(workdir=str(tmp_path / "remote")))
    db = tmp_path / "r.db"
    args = [
        "bench",
        str(bundles["teacher"]),
        str(bundles["student"]),
        "--device",
        "board",
        "--devices",
        str(tmp_path / "devices.toml"),
        "--db",
        str(db),
        "--runs",
        "1",
        "--repeats",
        "20",
        "--min-time",
        "0.05",
        "--threads",
        "1",
        "-q",
    ]
    r = run_cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "teacher vs student" in (r.stdout + r.stderr) and "measured 2" in (r.stdout + r.stderr)
    rows = read_rows(db)
    assert len(rows) == 2 and {x["role"] for x in rows} == {"teacher", "student"}
    again = run_cli(*args)
    assert again.returncode == 0 and "measured 0, already stored 2" in again.stdout
    listed = run_cli("results", "--db", str(db), "--role", "student", "--json")
    assert listed.returncode == 0
    assert [json.loads(line)["role"] for line in listed.stdout.strip().splitlines()] == ["student"]


def test_cli_bench_unknown_key_is_one_line_error(bundles, server, tmp_path):
    empty = tmp_path / "kh"
    empty.write_text("")
    r = run_cli(
        "bench",
        str(bundles["student"]),
        "--device",
        f"ssh://{server.user}@127.0.0.1:{server.port}",
        "--identity",
        str(server.user_key),
        "--known-hosts",
        str(empty),
        "--db",
        str(tmp_path / "r.db"),
        "--runs",
        "1",
        "--threads",
        "1",
        "-q",
    )
    assert r.returncode == 1 and "not in" in (r.stdout + r.stderr) and "Traceback" not in (r.stdout + r.stderr)


# -- devices.toml and URLs (no server) --------------------------------------------------------


def test_ssh_url():
    d = parse_ssh_url("ssh://pi@10.0.0.7:2222")
    assert (d.user, d.host, d.port, d.name) == ("pi", "10.0.0.7", 2222, "pi@10.0.0.7:2222")
    assert parse_ssh_url("ssh://board").port == 22
    for bad in ("ssh://", "http://x", "ssh://a:99999", "ssh://a/path"):
        with pytest.raises(DeviceError):
            parse_ssh_url(bad)


@pytest.mark.parametrize(
    "body, message",
    [
        ('[devices.pi]\nhost = "x"\ncolour = 1\n', "unknown key 'colour'"),
        ("[devices.pi]\nport = 22\n", "host is required"),
        ('[devices.pi]\nhost = "x"\nport = 0\n', "port must be in 1..65535"),
        ('[devices.pi]\nhost = "x"\nport = "22"\n', "port must be int"),
        ('[devices.pi]\nhost = "x"\ntarget = "toaster"\n', "target:"),
        ('[devices.local]\nhost = "x"\n', "reserved"),
        ('[boards.pi]\nhost = "x"\n', "unknown section"),
        ('[devices.pi]\nhost = "x"\nconnect_timeout = -1\n', "connect_timeout must be > 0"),
        ("[devices.pi\n", "not valid TOML"),
    ],
)
def test_devices_file_errors(tmp_path, body, message):
    f = tmp_path / "devices.toml"
    f.write_text(body)
    with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_devices(f)


def test_resolve_device(tmp_path):
    f = tmp_path / "devices.toml"
    f.write_text('[devices.pi4]\ntarget = "rpi4"\nhost = "10.0.0.2"\nuser = "pi"\nidentity_file = "keys/id"\n')
    d = resolve_device("pi4", f)
    assert d.target == "rpi4" and d.identity_file == tmp_path / "keys" / "id" and not d.is_local
    assert resolve_device("local").is_local
    with pytest.raises(DeviceError, match="devices there: pi4"):
        resolve_device("pi5", f)
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("pi4", tmp_path / "missing.toml")
