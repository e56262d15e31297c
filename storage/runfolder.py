"""Run folders shared by every job (``train``, ``search``, ``netadapt``, ``run``), see ARCHITECTURE.md, Run folders and state.

A run folder ``<out>/<UTC time>-<slug>-s<seed>/`` holds ``manifest.json``: job, resolved config,
seed, package versions, machine, the command, and an explicit :class:`Status`. A job calls
:meth:`RunFolder.create` (new run) or :meth:`RunFolder.open` (``--resume``), then runs inside
:meth:`RunFolder.session`, which records ``running`` with the process id, ``interrupted`` on
Ctrl-C, ``failed`` (with the error) on an exception, and leaves ``finished`` (or ``diverged``) to
the job. A folder left ``running`` by a process that no longer exists reads as ``killed``
(:class:`storage.status.Status`, after Optuna's trial states).
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import signal
import socket
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

from storage.statefiles import StateFileError, read_json, write_json
from storage.status import RUN_STATUSES, Status, parse_status

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
DEFAULT_OUT = Path("results/runs")
PACKAGES = ("mobilenas", "torch", "numpy", "pandas", "onnx", "onnxruntime", "ray", "scikit-learn", "mlxtend")
MANIFEST_FIELDS = {"schema_version": int, "job": str, "run_id": str, "status": str, "seed": int, "config": dict}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, Any]:
    """Platform, Python, CPU model and core count (the latency layer adds the full fingerprint)."""
    model = platform.processor() or "unknown"
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": model,
            "cores": os.cpu_count(), "hostname": socket.gethostname()}


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a live process from a reused pid), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def _alive(owner: Mapping[str, Any]) -> bool:
    """Whether the process recorded in ``owner`` still runs (assumed alive on another host;
    a missing or malformed owner is not alive)."""
    if not isinstance(owner.get("host"), str):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = owner.get("start")
    return start is None or _process_start(pid) in (None, start)


def _this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}


def new_run_id(seed: int, slug: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    clean = re.sub(r"[^A-Za-z0-9.]+", "-", slug).strip("-")[:48] or "run"
    return f"{stamp}-{clean}-s{seed}"


class RunFolder:
    """One run's folder and manifest; see the module docstring."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def create(cls, out: str | Path, *, job: str, slug: str, seed: int, config: Mapping[str, Any],
               command: list[str] | None = None, extra: Mapping[str, Any] | None = None) -> "RunFolder":
        """A fresh folder under ``out`` (suffixed if the name is taken) with its manifest."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out {str(out)!r} is a file; expected a folder for run folders")
        run_id = new_run_id(seed, slug)
        path, n = out / run_id, 1
        while path.exists():
            n += 1
            path = out / f"{run_id}-{n}"
        path.mkdir(parents=True)
        manifest = {"schema_version": SCHEMA_VERSION, "job": job, "run_id": path.name, "status": Status.RUNNING.value,
                    "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "command": command if command is not None else ["mobilenas", *sys.argv[1:]], "seed": seed,
                    "config": dict(config), "packages": package_versions(), "machine": machine_info(),
                    "owner": _this_process(), **dict(extra or {})}
        folder = cls(path, manifest)
        try:
            folder.save()
        except BaseException:
            path.rmdir()  # nothing was written: leave no folder that looks like a run
            raise
        return folder

    @classmethod
    def open(cls, path: str | Path, *, job: str,
             fields: Mapping[str, type | tuple[type, ...]] | None = None) -> "RunFolder":
        """An existing run folder of ``job`` (for ``--resume``), its manifest checked: the
        common fields, then the job's own ``fields``."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume {str(path)!r} is not a folder; expected a run folder of mobilenas {job}")
        manifest = read_json(path / MANIFEST, fields={**MANIFEST_FIELDS, **dict(fields or {})},
                             schema_version=SCHEMA_VERSION, what=f"manifest of a mobilenas {job} run")
        if manifest["job"] != job:
            raise StateFileError(f"{path / MANIFEST}: this is a run folder of mobilenas {manifest['job']}, "
                                 f"not of mobilenas {job}")
        try:
            parse_status(manifest["status"], RUN_STATUSES)
        except ValueError:
            raise StateFileError(f"{path / MANIFEST}: field 'status' = {manifest['status']!r} is not one of "
                                 f"{[s.value for s in RUN_STATUSES]}") from None
        return cls(path, manifest)

    def file(self, name: str) -> Path:
        return self.path / name

    def save(self) -> None:
        write_json(self.path / MANIFEST, self.manifest)

    def update(self, **fields: Any) -> None:
        """Set manifest fields and write the manifest atomically."""
        self.manifest.update(fields)
        self.save()

    @property
    def status(self) -> Status:
        """The real state: ``running`` left by a process that is gone reads as ``killed``."""
        recorded = parse_status(self.manifest["status"], RUN_STATUSES)
        if recorded is Status.RUNNING and not _alive(self.owner):
            return Status.KILLED
        return recorded

    @property
    def owner(self) -> dict[str, Any]:
        """The process recorded as running the job (empty when none or malformed)."""
        owner = self.manifest.get("owner")
        return owner if isinstance(owner, dict) else {}

    def set_status(self, status: Status, **fields: Any) -> None:
        self.update(status=status.value, **fields)

    def check_resumable(self) -> None:
        """Raise ``ValueError`` when the run cannot be resumed (finished, diverged, or still running)."""
        status = self.status
        if status is Status.FINISHED:
            raise ValueError(f"run {self.path} is already finished; start a new run instead of --resume")
        if status is Status.DIVERGED:
            raise ValueError(f"run {self.path} diverged ({self.manifest.get('error')}); its config is final, "
                             "start a new run with other settings")
        if status is Status.RUNNING:
            owner = self.owner
            raise ValueError(f"run {self.path} is still running (pid {owner.get('pid')} on {owner.get('host')}); "
                             "stop it before resuming")

    @contextmanager
    def session(self) -> Iterator["StopFlag"]:
        """Run the job: status ``running`` with this process as owner; Ctrl-C/SIGTERM set the
        yielded flag (the job stops at its next safe point and should return normally);
        ``interrupted`` if the job leaves with the flag set or by KeyboardInterrupt, ``failed``
        with the error on any other exception. The job itself sets ``finished``."""
        previous = self.manifest.get("resumes", -1)
        resumes = (previous if isinstance(previous, int) and not isinstance(previous, bool) else -1) + 1
        self.update(status=Status.RUNNING.value, resumes=resumes, error=None, owner=_this_process())
        with StopFlag() as stop:
            try:
                yield stop
            except KeyboardInterrupt:
                self.set_status(Status.INTERRUPTED)
                raise
            except BaseException as exc:
                if self.manifest["status"] == Status.RUNNING.value:
                    self.set_status(Status.FAILED, error=f"{type(exc).__name__}: {exc}")
                raise
        if self.manifest["status"] == Status.RUNNING.value:
            self.set_status(Status.INTERRUPTED if stop() else Status.FAILED,
                            error=None if stop() else "the job returned without a final status")


def child_run(parent: Path, job: str) -> RunFolder | None:
    """The one run folder of ``job`` that a step of a larger job created under ``parent``, if any."""
    if not parent.is_dir():
        return None
    found = sorted(p for p in parent.iterdir() if (p / MANIFEST).is_file())
    if len(found) > 1:
        raise ValueError(f"{parent} holds {len(found)} run folders; expected one (remove the extra ones)")
    return RunFolder.open(found[0], job=job) if found else None


class StopFlag:
    """SIGINT/SIGTERM set the flag (a job stops at its next safe point); a second Ctrl-C
    raises KeyboardInterrupt at once. Handlers are restored on exit. Only the main thread
    can install handlers; elsewhere the flag stays a plain flag."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stop = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        try:
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread
            self.previous = {}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f"\n{signal.Signals(signum).name}: stopping at the next safe point (work in progress is finished "
              "and saved first); press Ctrl-C again to stop at once", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def __call__(self) -> bool:
        return self.stop
