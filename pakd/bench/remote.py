"""``pakd bench BUNDLE... --device NAME``: run bundles on devices and store every figure.

For each device (in parallel, one worker each):

1. connect (SSH, or this machine for ``local``) and collect the device's facts (CPU, cores,
   governor, frequency, temperature, throttling, OS, kernel, RAM);
2. upload the bundles **content-addressed**: every file goes to ``<workdir>/blobs/<sha256>``,
   files already there are not sent again, and every blob a bundle needs is re-hashed *on the
   device* with ``sha256sum`` (a file corrupted in transit or on the board's storage is removed
   and reported); the bundle is then assembled from hard links under
   ``<workdir>/bundles/<manifest sha256>/``;
3. run the golden input and compare with the expected output;
4. time the runner's bench mode (warm-up, >= N repeats and a minimum time) at 1 thread and at
   all cores, ``runs`` times each, storing each finished row in the results store at once.

The session id comes from the plan, so the same command run again skips every row already
stored (a benchmark cut off halfway resumes where it stopped).
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..deploy.bundle import MANIFEST, Bundle, open_bundle, sha256_file
from ..errors import PakdError
from .devices import Device, DeviceError
from .engines import BenchError
from .results import ResultsStore, RowSummary, session_id, summarize
from .transport import Result, Transport, connect

FACTS_SCRIPT = r"""
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || uname -s)"
echo "cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
echo "cpu_model=$(grep -m1 -E '^(model name|Hardware|Processor|cpu model)[[:space:]]*:' /proc/cpuinfo 2>/dev/null | cut -d: -f2-)"
[ -r /proc/device-tree/model ] && echo "board=$(tr -d '\0' < /proc/device-tree/model)"
f=/sys/devices/system/cpu/cpu0/cpufreq
[ -r $f/scaling_governor ] && echo "governor=$(cat $f/scaling_governor)"
[ -r $f/scaling_cur_freq ] && echo "freq_khz=$(cat $f/scaling_cur_freq)"
[ -r $f/cpuinfo_max_freq ] && echo "max_freq_khz=$(cat $f/cpuinfo_max_freq)"
[ -r /sys/class/thermal/thermal_zone0/temp ] && echo "temp_millic=$(cat /sys/class/thermal/thermal_zone0/temp)"
command -v vcgencmd >/dev/null 2>&1 && echo "throttled=$(vcgencmd get_throttled 2>/dev/null | cut -d= -f2)"
echo "ram_kb=$(grep -m1 MemTotal /proc/meminfo 2>/dev/null | tr -s ' ' | cut -d' ' -f2)"
echo "load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
"""

# uname -m of a device that runs bundles of a target architecture
_ARCH_OK = {
    "x86_64": {"x86_64", "amd64"},
    "aarch64": {"aarch64", "arm64"},
    "armv7": {"armv7l", "armv8l", "armv7", "aarch64", "arm64"},
}
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BenchPlan:
    threads: tuple[str, ...] = ("1", "all")  # "all" = every core the device has
    runs: int = 3  # bench invocations per (bundle, threads)
    repeats: int = 100  # timed calls per invocation (at least)
    warmup: int = 10
    min_time_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.threads or any(t != "all" and (not t.isdigit() or int(t) < 1) for t in self.threads):
            raise BenchError(f"--threads {','.join(self.threads)!r}: give counts >= 1 and/or 'all', like 1,all")
        if self.runs < 1 or self.repeats < 1 or self.warmup < 0 or not 0 <= self.min_time_s < float("inf"):
            raise BenchError("need --runs >= 1, --repeats >= 1, --warmup >= 0, --min-time >= 0")

    @classmethod
    def from_options(
        cls,
        threads: str | None = None,
        runs: int | None = None,
        repeats: int | None = None,
        warmup: int | None = None,
        min_time_s: float | None = None,
    ) -> BenchPlan:
        """The plan from command-line options; None takes the default above. ``threads`` like '1,all'."""
        given: dict[str, Any] = {"runs": runs, "repeats": repeats, "warmup": warmup, "min_time_s": min_time_s}
        plan = cls(**{k: v for k, v in given.items() if v is not None})
        if not threads:
            return plan
        from dataclasses import replace

        return replace(plan, threads=tuple(t.strip() for t in threads.split(",") if t.strip()))

    def key(self) -> dict[str, Any]:
        return {
            "threads": list(self.threads),
            "runs": self.runs,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "min_time_s": self.min_time_s,
        }


@dataclass
class BundleInfo:
    bundle: Bundle
    sha256: str  # of manifest.json: the bundle's identity
    role: str | None
    source: str | None
    model: str
    arch: str
    model_bytes: int
    bundle_bytes: int
    files: dict[str, str]  # relative path -> sha256 (manifest.json included)

    @property
    def name(self) -> str:
        return str(self.bundle.root)


@dataclass
class DeviceOutcome:
    device: Device
    facts: dict[str, Any] = field(default_factory=dict)
    measured: int = 0
    skipped: int = 0
    uploaded: int = 0
    reused: int = 0
    error: str | None = None


def describe_bundle(path: str | Path, role: str | None = None) -> BundleInfo:
    b = open_bundle(path)  # every file checked against the manifest here first
    m = b.manifest
    src = m.get("source") or {}
    files = {rel: e["sha256"] for rel, e in m["files"].items()}
    files[MANIFEST] = sha256_file(b.root / MANIFEST)
    return BundleInfo(
        b,
        files[MANIFEST],
        role or src.get("role"),
        src.get("path"),
        str(m.get("model", b.root.name)),
        m["target"].get("arch", ""),
        int(m.get("sizes", {}).get("model_bytes", 0)),
        sum(int(e["bytes"]) for e in m["files"].values()),
        files,
    )


def parse_facts(text: str) -> dict[str, Any]:
    raw = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.strip():
            raw[key.strip()] = value.strip()
    facts: dict[str, Any] = {
        k: raw[k] for k in ("arch", "kernel", "os", "cpu_model", "board", "governor", "throttled") if k in raw
    }
    for key, name, scale in (
        ("cores", "cores", 1),
        ("freq_khz", "freq_mhz", 1e-3),
        ("max_freq_khz", "max_freq_mhz", 1e-3),
        ("temp_millic", "temperature_c", 1e-3),
        ("ram_kb", "ram_bytes", 1024),
    ):
        try:
            v = float(raw[key]) * scale
            facts[name] = int(v) if name in ("cores", "ram_bytes") else round(v, 1)
        except (KeyError, ValueError):
            pass
    if "load" in raw:
        facts["load_avg"] = raw["load"]
    return facts


def _check(r: Result, device: Device, what: str) -> Result:
    if r.returncode != 0:
        tail = (r.stderr.strip() or r.text().strip()).splitlines()[-3:]
        raise DeviceError(f"{device.name}: {what} failed (exit {r.returncode}): {' | '.join(tail) or 'no message'}")
    return r


def upload(transport: Transport, infos: Sequence[BundleInfo], outcome: DeviceOutcome) -> dict[str, str]:
    """Send what the device lacks, verify every blob on the device, assemble each bundle.
    Returns {bundle sha256: remote bundle folder (relative to the workdir)}."""
    dev = transport.device
    needed: dict[str, Path] = {}
    for info in infos:
        for rel, h in info.files.items():
            if not _HEX.match(h):
                raise BenchError(f"{info.name}: bad sha256 for {rel} in the manifest")
            needed.setdefault(h, info.bundle.root / rel)
    present = set(
        _check(
            transport.run(
                "mkdir -p blobs && cd blobs && for h in "
                + " ".join(sorted(needed))
                + '; do [ -f "$h" ] && echo "$h"; done; true',
                what="listing stored files",
            ),
            dev,
            "listing stored files",
        )
        .text()
        .split()
    )
    for h, local in sorted(needed.items()):
        if h in present:
            outcome.reused += 1
            continue
        transport.put(local, f"blobs/{h}", what=f"uploading {local.name}")
        outcome.uploaded += 1
    # every blob these bundles use is re-hashed on the device
    r = _check(
        transport.run("cd blobs && sha256sum " + " ".join(sorted(needed)), what="hashing on the device"),
        dev,
        "sha256sum on the device",
    )
    found = {}
    for line in r.text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[1].lstrip("*")] = parts[0]
    bad = [h for h in needed if found.get(h) != h]
    if bad:
        transport.run("cd blobs && rm -f " + " ".join(bad), what="removing corrupted files")
        names = ", ".join(needed[h].name for h in bad)
        raise DeviceError(
            f"{dev.name}: hash mismatch on the device for {names} (corrupted in transit or on the "
            "device's storage; removed there: rerun to send it again)"
        )
    remote: dict[str, str] = {}
    for info in infos:
        folder = f"bundles/{info.sha256}"
        lines = [f"rm -rf {folder}.tmp && mkdir -p {folder}.tmp"]
        for rel, h in sorted(info.files.items()):
            dest = shlex.quote(f"{folder}.tmp/{rel}")
            lines.append(f'mkdir -p "$(dirname {dest})" && (ln -f blobs/{h} {dest} 2>/dev/null || cp blobs/{h} {dest})')
        runner = info.bundle.manifest["run"]["argv"][0]
        lines.append(f"chmod +x {shlex.quote(folder + '.tmp/' + runner)}")
        lines.append(f"rm -rf {folder} && mv {folder}.tmp {folder}")
        _check(transport.run(" && ".join(lines), what="assembling the bundle"), dev, f"assembling {info.name}")
        remote[info.sha256] = folder
    return remote


def _runner_argv(info: BundleInfo, threads: int) -> list[str]:
    run = info.bundle.manifest["run"]
    argv = list(run["argv"])
    if not argv[0].startswith(("/", "./")):
        argv[0] = "./" + argv[0]
    if "--threads" in argv:
        argv[argv.index("--threads") + 1] = str(threads)
    else:
        argv += ["--threads", str(threads)]
    return argv


def golden_check(transport: Transport, info: BundleInfo, folder: str) -> tuple[bool, float]:
    run = info.bundle.manifest["run"]
    out = ".pakd-output.f32"
    argv = _runner_argv(info, 1) + [run["output_option"], out]
    script = f"cd {folder} && rm -f {out} && {shlex.join(argv)} >/dev/null && cat {out} && rm -f {out}"
    r = _check(transport.run(script, what="the golden run"), transport.device, f"the golden run of {info.name}")
    got = np.frombuffer(r.stdout, dtype="<f4")
    expected = np.fromfile(info.bundle.file("golden-output"), dtype="<f4")
    if got.shape != expected.shape:
        raise DeviceError(
            f"{transport.device.name}: {info.name} wrote {got.size} output values, {expected.size} expected"
        )
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    atol = float(info.bundle.manifest.get("golden", {}).get("atol", 1e-4))
    return bool(diff <= atol and got.argmax() == expected.argmax()), diff


def bench_once(transport: Transport, info: BundleInfo, folder: str, threads: int, plan: BenchPlan) -> dict[str, Any]:
    run = info.bundle.manifest["run"]
    argv = _runner_argv(info, threads) + ["--bench", "--warmup", str(plan.warmup), "--repeats", str(plan.repeats)]
    if run.get("json_option"):
        argv.append(run["json_option"])
    if info.bundle.backend == "native":
        argv += ["--min-time", f"{plan.min_time_s:g}"]
    r = _check(
        transport.run(f"cd {folder} && {shlex.join(argv)}", what="the benchmark"),
        transport.device,
        f"benchmarking {info.name}",
    )
    lines = [ln for ln in r.text().strip().splitlines() if ln.startswith("{")]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise DeviceError(f"{transport.device.name}: the runner of {info.name} printed no JSON result") from None


def thread_counts(plan: BenchPlan, cores: int | None) -> list[int]:
    out: list[int] = []
    for t in plan.threads:
        n = (cores or 1) if t == "all" else int(t)
        if n >= 1 and n not in out:
            out.append(n)
    return out


def run_device(
    device: Device,
    infos: Sequence[BundleInfo],
    plan: BenchPlan,
    store: ResultsStore,
    session: str,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> DeviceOutcome:
    """Everything for one device; errors end up in ``outcome.error`` (rows already stored stay)."""
    outcome = DeviceOutcome(device)
    note = progress or (lambda *_: None)
    transport = None
    try:
        note(device.name, 0, 0, "connecting")
        transport = connect(device)
        outcome.facts = parse_facts(
            _check(
                transport.run(FACTS_SCRIPT, what="collecting device facts"), device, "collecting device facts"
            ).text()
        )
        arch = outcome.facts.get("arch", "")
        usable = []
        for info in infos:
            if arch and arch not in _ARCH_OK.get(info.arch, {info.arch}):
                raise DeviceError(
                    f"{device.name}: {info.name} is built for {info.bundle.target} ({info.arch}), the device is {arch}"
                )
            usable.append(info)
        note(device.name, 0, 0, "uploading")
        folders = upload(transport, usable, outcome)
        counts = thread_counts(plan, outcome.facts.get("cores"))
        total = len(usable) * len(counts) * plan.runs
        done = 0
        for info in usable:
            ok, diff = golden_check(transport, info, folders[info.sha256])
            if not ok:
                raise DeviceError(
                    f"{device.name}: {info.name} gives wrong outputs on the device "
                    f"(max |diff| {diff:.3g} vs the golden output)"
                )
            for threads in counts:
                for k in range(plan.runs):
                    if store.has(session, info.sha256, device.name, threads, k):
                        outcome.skipped += 1
                    else:
                        note(device.name, done, total, f"{Path(info.name).name}, {threads} thr, run {k + 1}")
                        stats = bench_once(transport, info, folders[info.sha256], threads, plan)
                        store.add(_row(session, info, device, threads, k, stats, outcome.facts, ok, diff))
                        outcome.measured += 1
                    done += 1
                    note(device.name, done, total, "")
    except PakdError as exc:
        outcome.error = str(exc)
    finally:
        if transport is not None:
            transport.close()
    return outcome


def _row(
    session: str,
    info: BundleInfo,
    device: Device,
    threads: int,
    run: int,
    stats: dict[str, Any],
    facts: dict[str, Any],
    ok: bool,
    diff: float,
) -> dict[str, Any]:
    engine = "pakd" if info.bundle.backend == "native" else info.bundle.backend
    return {
        "session": session,
        "bundle_sha256": info.sha256,
        "bundle": info.name,
        "source": info.source,
        "role": info.role,
        "model": info.model,
        "engine": engine,
        "target": info.bundle.target,
        "device": device.name,
        "threads": threads,
        "run": run,
        **{k: stats.get(k) for k in ("median_us", "p90_us", "min_us", "max_us", "mean_us", "stdev_us", "peak_rss_kb")},
        "iterations": stats.get("runs"),
        "model_bytes": info.model_bytes,
        "bundle_bytes": info.bundle_bytes,
        "golden_ok": ok,
        "golden_max_abs_diff": diff,
        "facts": facts,
    }


def bench_bundles(
    bundles: Sequence[str | Path],
    devices: Sequence[Device],
    plan: BenchPlan,
    store: ResultsStore,
    *,
    teacher: str | Path | None = None,
    fresh: bool = False,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> tuple[str, list[DeviceOutcome]]:
    """Benchmark every bundle on every device (devices in parallel). Returns the session id and
    one outcome per device."""
    if not bundles:
        raise BenchError("no bundle given")
    if not devices:
        raise BenchError("no device given")
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise BenchError("a device is given twice")
    teacher_root = Path(teacher).resolve() if teacher else None
    infos = []
    for b in bundles:
        role = "teacher" if teacher_root is not None and Path(b).resolve() == teacher_root else None
        if teacher_root is not None and role is None:
            role = "student"
        infos.append(describe_bundle(b, role))
    if teacher_root is not None and not any(i.role == "teacher" for i in infos):
        raise BenchError(f"--teacher {teacher} is not one of the bundles given")
    session = session_id(
        {
            "bundles": sorted(i.sha256 for i in infos),
            "devices": sorted(names),
            "plan": plan.key(),
            "roles": sorted((i.sha256, i.role or "") for i in infos),
        },
        fresh=fresh,
    )
    lock = threading.Lock()

    def safe_progress(*a: Any) -> None:
        if progress:
            with lock:
                progress(*a)

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        outcomes = list(pool.map(lambda d: run_device(d, infos, plan, store, session, safe_progress), devices))
    return session, outcomes


@dataclass(frozen=True)
class Comparison:
    device: str
    threads: int
    teacher: str
    student: str
    size_ratio: float | None
    median_ratio: float | None
    p90_ratio: float | None
    memory_ratio: float | None
    teacher_median_us: float | None
    student_median_us: float | None


def compare(rows: Sequence[dict[str, Any]]) -> list[Comparison]:
    """Teacher vs student per (device, threads) from one session's rows: the medians of the runs."""
    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["device"], r["threads"], r["bundle_sha256"], r.get("role") or ""), []).append(r)
    agg: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for (dev, thr, _sha, role), rs in groups.items():
        agg.setdefault((dev, thr), {}).setdefault(role, []).append(
            {
                "bundle": rs[0]["bundle"],
                "median": summarize(r["median_us"] for r in rs),
                "p90": summarize(r["p90_us"] for r in rs),
                "rss": summarize(r["peak_rss_kb"] for r in rs),
                "bytes": rs[0]["model_bytes"],
            }
        )
    out = []
    for (dev, thr), roles in sorted(agg.items()):
        teachers = [t for t in roles.get("teacher", []) if t["median"]]
        if not teachers:
            continue
        best = min(teachers, key=lambda t: t["median"])
        for s in roles.get("student", []):

            def ratio(a: Any, b: Any) -> float | None:
                return (a / b) if a and b else None

            out.append(
                Comparison(
                    dev,
                    thr,
                    best["bundle"],
                    s["bundle"],
                    ratio(best["bytes"], s["bytes"]),
                    ratio(best["median"], s["median"]),
                    ratio(best["p90"], s["p90"]),
                    ratio(best["rss"], s["rss"]),
                    best["median"],
                    s["median"],
                )
            )
    return out


@dataclass(frozen=True)
class DeviceBench:
    """What ``pakd bench BUNDLE... --device ...`` measured: the session, every device's outcome,
    the session's rows, their summary per (device, bundle, role, engine, threads) and the
    teacher-vs-student comparisons."""

    session: str
    outcomes: list[DeviceOutcome]
    rows: list[dict[str, Any]]
    summary: list[RowSummary]
    comparisons: list[Comparison]

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.error)

    @property
    def kept_some(self) -> bool:
        """Whether any device finished (or had stored) rows: a rerun then completes the rest."""
        return any(o.measured or o.skipped for o in self.outcomes)


def bench_on_devices(
    bundles: Sequence[str | Path],
    device_specs: Sequence[str],
    plan: BenchPlan,
    db: str | Path,
    *,
    devices_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    teacher: str | Path | None = None,
    fresh: bool = False,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> DeviceBench:
    """Resolve the devices (names in ``devices_file``, ``local``, ``ssh://`` URLs, with the
    command line's ``overrides``), bench every bundle on all of them in parallel into the store
    at ``db``, and summarise the session."""
    from .devices import resolve_device
    from .results import open_store, summarize_rows

    devices = [resolve_device(d, devices_file, **(overrides or {})) for d in device_specs]
    with open_store(db) as store:
        session, outcomes = bench_bundles(
            bundles, devices, plan, store, teacher=teacher, fresh=fresh, progress=progress
        )
        rows = store.rows(session=session)
    return DeviceBench(session, outcomes, rows, summarize_rows(rows), compare(rows))
