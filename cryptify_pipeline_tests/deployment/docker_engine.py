"""A private Docker engine for the deploy test, and the images it builds there.

The engine is Debian's ``dockerd`` in a temporary root (``docker-root-cryptify-*`` under /work, or
the temporary folder): its data, its socket and its state, so nothing of the machine's own Docker
(if any) is touched, and ``Engine.stop`` removes it all, mounts first. It prefers the overlay2
storage driver and falls back to vfs, which copies every layer (about 18 GB for this stack).

No registry is reachable, so the images the production files name are stood in for: a Debian
bookworm root from ``debootstrap --variant=minbase``, imported; this machine's CPython copied onto
it in place of ``python:3.11-slim-bookworm``; Debian's postgresql package in place of ``postgres``
(``standins/``). The project image is then built from the real ``docker/Dockerfile`` on that base,
with this machine's pip configuration (its CA bundle) passed as a build secret, never into a layer.

``python -m cryptify_pipeline_tests.deployment.docker_engine clean`` removes the roots of test
processes that died without cleaning up (``make test-deploy`` runs it after the test).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptify_pipeline.settings import project_root

ROOT = project_root()
STANDINS = Path(__file__).parent / "standins"
ROOT_PREFIX = "docker-root-cryptify-"
OWNER_FILE = "owner.pid"  # the test process that made a root; a dead owner means a stale root
DEBIAN_MIRROR = os.environ.get("CRYPTIFY_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# what python:3.11-slim-bookworm holds besides Python, and the libraries CPython's modules load
DEBIAN_PACKAGES = (
    "ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,"
    "libncursesw6,libreadline8,libuuid1,libexpat1,zlib1g,libtirpc3,libnsl2,libgdbm6"
)
DEBIAN_IMAGE = "cryptify-test/debian:bookworm-minbase"
POSTGRES_IMAGE = "cryptify-test/postgres:15-bookworm"
# Debian's python3.11 is 3.11.2, whose pip check fails on redis' async-timeout marker
MIN_PYTHON = (3, 11, 3)


class EngineError(RuntimeError):
    """The engine, a build or compose failed; the message holds the command and its output."""


@dataclass
class Engine:
    root: Path
    storage_driver: str
    process: subprocess.Popen
    cli: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def env(self) -> dict[str, str]:
        """The environment of docker and docker-compose commands aimed at this engine."""
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "1",  # build secrets; the default builder from Docker 23
            # vfs creates a container by copying its image: far beyond compose's default 60 s
            "COMPOSE_HTTP_TIMEOUT": "600",
        }

    def docker(
        self, *args: str, timeout: float = 600, stdin=None, stdin_text: str | None = None
    ) -> str:
        """Run the docker CLI on this engine; its output, or an ``EngineError``."""
        return _run([self.cli, *args], self.env, timeout, stdin=stdin, stdin_text=stdin_text)

    def run_local(self, command: Sequence[str], timeout: float = 120) -> str:
        """A command of this machine (not of the engine); its output."""
        return _run(command, dict(os.environ), timeout)

    def logs(self, container: str) -> str:
        """``docker logs``: the container's stdout and stderr (where Dagster logs)."""
        return _run([self.cli, "logs", container], self.env, 120, stderr_too=True)

    def timed(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 1)
        print(f"[deploy] {name}: {seconds:.1f} s", flush=True)

    def disk_use(self) -> str:
        return _run(["du", "-sh", str(self.root)], os.environ, 600).split()[0]

    def stop(self) -> None:
        """Remove every container, stop dockerd (and its containerd), unmount and delete the
        root. Never raises: it runs in ``finally`` blocks and must not hide the real error."""
        _stop_root(self.root, self.process.pid, self.cli if self.socket.exists() else None)


@contextmanager
def docker_engine(parent: Path | None = None) -> Iterator[Engine]:
    """A running engine in a new temporary root; stopped and deleted however the block ends."""
    parent = parent or default_parent()
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=parent))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    engine = None
    # a SIGTERM (a CI timeout, kill) unwinds through the finally below instead of leaving
    # dockerd and GBs behind; SIGKILL cannot, which `clean` after the test covers
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        engine = _start(root)
        yield engine
    finally:
        if engine is not None:
            engine.stop()
        else:
            _stop_root(root, None, None)
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def default_parent() -> Path:
    work = Path("/work")
    return work if work.is_dir() and os.access(work, os.W_OK) else Path(tempfile.gettempdir())


def prerequisites() -> list[str]:
    """What this machine lacks to run the engine (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (dockerd and debootstrap need it)")
    for tool, package in (
        ("dockerd", "docker.io"), ("debootstrap", "debootstrap"),
        ("docker-compose", "docker-compose"), ("tar", "tar"),
    ):  # fmt: skip
        if not shutil.which(tool):
            missing.append(f"{tool} (apt-get install {package})")
    if docker_cli() is None:
        missing.append("a docker CLI with BuildKit (apt-get install docker.io)")
    if sys.version_info[:3] < MIN_PYTHON or sys.version_info[:2] != (3, 11):
        missing.append(f"CPython 3.11 >= 3.11.3 to copy into the base image, not {sys.version}")
    return missing


def docker_cli() -> str | None:
    """Debian's docker CLI (20.10) next to its dockerd: it builds with BuildKit on its own,
    where a newer CLI without the buildx plugin cannot."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    """A free local port below the ephemeral range, so no client connection of this busy
    machine can hold it between now and the server's bind."""
    for port in random.sample(range(20000, 32000), 12000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise EngineError("no free port between 20000 and 32000")


# -- images ---------------------------------------------------------------------------------


def build_debian_base(engine: Engine) -> str:
    """debootstrap a minimal bookworm and import it as an image."""
    started = time.monotonic()
    rootfs = engine.root / "rootfs"
    _run(
        ["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", "bookworm",
         str(rootfs), DEBIAN_MIRROR],
        os.environ, 900,
    )  # fmt: skip
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        engine.docker("import", "-", DEBIAN_IMAGE, stdin=tar.stdout)
    finally:
        tar.stdout.close()
        tar.wait()
    shutil.rmtree(rootfs)
    engine.timed("debian base (debootstrap + import)", time.monotonic() - started)
    return DEBIAN_IMAGE


def build_python_standin(engine: Engine, debian_image: str) -> str:
    """This interpreter's CPython in /usr/local of the Debian image, as the official image has
    it: the standard library, pip and setuptools, nothing else of site-packages."""
    started = time.monotonic()
    version = ".".join(map(str, sys.version_info[:3]))
    image = f"cryptify-test/python:{version}-slim-bookworm"
    context = engine.root / "python-standin"
    _stage_python(Path(sys.base_prefix), context)
    engine.docker(
        "build", "--quiet", "--network", "host", "--build-arg", f"DEBIAN_IMAGE={debian_image}",
        "-f", str(STANDINS / "python.Dockerfile"), "-t", image, str(context),
    )  # fmt: skip
    shutil.rmtree(context)
    engine.timed("python stand-in", time.monotonic() - started)
    return image


def build_postgres_standin(engine: Engine, debian_image: str) -> str:
    started = time.monotonic()
    engine.docker(
        "build", "--quiet", "--network", "host", "--build-arg", f"DEBIAN_IMAGE={debian_image}",
        "-f", str(STANDINS / "postgres.Dockerfile"), "-t", POSTGRES_IMAGE, str(STANDINS),
    )  # fmt: skip
    engine.timed("postgres stand-in", time.monotonic() - started)
    return POSTGRES_IMAGE


def build_project_image(engine: Engine, base_image: str, tag: str) -> str:
    """The real docker/Dockerfile, from the repository root, on the stand-in base."""
    started = time.monotonic()
    secrets = pip_build_secrets(engine.root / "pip-secrets")
    engine.docker(
        "build", "--quiet", "--network", "host", "--build-arg", f"BASE_IMAGE={base_image}",
        *secrets, "-f", str(ROOT / "docker" / "Dockerfile"), "-t", tag, str(ROOT),
        timeout=3600,
    )  # fmt: skip
    engine.timed("project image (docker/Dockerfile)", time.monotonic() - started)
    return tag


def pip_build_secrets(folder: Path) -> list[str]:
    """``--secret`` arguments giving the build this machine's way to the package index: its
    CA bundle and index settings from ``pip config list`` (files and PIP_* variables). Local
    paths (find-links, file:// indexes, constraints) mean nothing inside a build and are left
    out. Empty when pip needs no configuration here."""
    listed = _run([sys.executable, "-m", "pip", "config", "list"], os.environ, 120)
    found: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.match(r"^[^.]*\.([\w-]+)='(.*)'$", line.strip())
        if match:
            found[match[1]] = match[2]
    settings, secrets = {}, []
    cert = found.get("cert")
    if cert and Path(cert).is_file():
        settings["cert"] = "/run/secrets/pip-ca.pem"
        secrets += ["--secret", f"id=pip-ca.pem,src={cert}"]
    for key in ("index-url", "extra-index-url"):
        urls = [url for url in found.get(key, "").split() if url.startswith(("http:", "https:"))]
        if urls:
            settings[key] = " ".join(urls)
    for key in ("trusted-host", "default-timeout", "timeout", "retries"):
        if key in found:
            settings[key.removeprefix("default-")] = found[key]
    lines = [f"{key} = {value}" for key, value in settings.items()]
    if not lines:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "pip.conf"
    conf.write_text("[global]\n" + "\n".join(lines) + "\n")
    return ["--secret", f"id=pip.conf,src={conf}", *secrets]


def git_tag() -> str:
    """The image tag of this checkout: its commit, as the README tells operators to tag."""
    try:
        commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], os.environ, 30)
    except EngineError:
        return "test"
    return f"test-{commit.strip()}"


# -- compose --------------------------------------------------------------------------------


def compose_command() -> list[str]:
    found = shutil.which("docker-compose")
    if found is None:
        raise EngineError("docker-compose not found (apt-get install docker-compose)")
    return [found]


@contextmanager
def compose_stack(
    engine: Engine, files: Sequence[Path], env_file: Path, project: str, logs: Path
) -> Iterator[Path]:
    """``up -d`` the stack of ``files`` (merged by compose itself); on exit its logs go to
    ``logs`` and it is taken down with its volumes, run containers first (they hold the
    compute-log volume). Yields the merged file."""
    import yaml

    base = [*compose_command(), "-p", project]
    merged = engine.root / "compose.merged.yml"
    config = _run(
        [*base, *[arg for file in files for arg in ("-f", str(file))],
         "--env-file", str(env_file), "config"],
        engine.env, 120,
    )  # fmt: skip
    stack = yaml.safe_load(config)
    # On the host network nothing is published, and docker-py refuses port bindings there;
    # docker-compose 1.x has no way for an override to drop them.
    for service in stack["services"].values():
        service.pop("ports", None)
    merged.write_text(yaml.safe_dump(stack, sort_keys=False))
    command = [*base, "-f", str(merged)]
    try:
        started = time.monotonic()
        _run([*command, "up", "-d", "--no-build"], engine.env, 900)
        engine.timed("compose up -d", time.monotonic() - started)
        yield merged
    finally:
        try:
            logs.write_text(_run([*command, "logs", "--no-color"], engine.env, 300))
        except EngineError as error:
            logs.write_text(str(error))
        try:
            runs = engine.docker("ps", "-aq", "--filter", "label=dagster/run_id").split()
            if runs:
                engine.docker("rm", "-f", *runs)
            _run([*command, "down", "-v", "--timeout", "20"], engine.env, 600)
        except EngineError as error:
            print(f"[deploy] compose down failed (the engine's removal follows): {error}")


# -- internals ------------------------------------------------------------------------------


def _start(root: Path) -> Engine:
    cli = docker_cli()
    if cli is None:
        raise EngineError("no docker CLI found (apt-get install docker.io)")
    last_error = ""
    # CRYPTIFY_TEST_STORAGE_DRIVER=vfs forces the slow driver that works everywhere
    forced = os.environ.get("CRYPTIFY_TEST_STORAGE_DRIVER")
    for driver in [forced] if forced else ["overlay2", "vfs"]:
        started = time.monotonic()
        log = (root / f"dockerd-{driver}.log").open("w")
        process = subprocess.Popen(
            ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{root / 'docker.sock'}",
             f"--storage-driver={driver}", "--iptables=false", "--bridge=none"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        engine = Engine(root=root, storage_driver=driver, process=process, cli=cli)
        if _wait_until_up(engine, timeout=120):
            engine.timed(f"dockerd up ({driver})", time.monotonic() - started)
            if driver == "vfs":
                print("[deploy] vfs copies every layer: expect ~18 GB and a much slower test")
            return engine
        last_error = (root / f"dockerd-{driver}.log").read_text()[-2000:]
        _stop_root(root, process.pid, None, delete=False)
        shutil.rmtree(root / "data", ignore_errors=True)
    raise EngineError(
        f"dockerd did not start (storage driver {forced or 'overlay2, vfs'}):\n{last_error}"
    )


def _wait_until_up(engine: Engine, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            return False
        if engine.socket.exists():
            try:
                engine.docker("info", "--format", "{{.Driver}}", timeout=30)
                return True
            except EngineError:
                pass
        time.sleep(0.5)
    return False


def _stop_root(root: Path, pid: int | None, cli: str | None, delete: bool = True) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{root / 'docker.sock'}"}
    if cli is not None:
        try:
            containers = _run([cli, "ps", "-aq"], env, 60).split()
            if containers:
                _run([cli, "rm", "-f", *containers], env, 300)
        except EngineError as error:
            print(f"[deploy] could not remove the containers: {error}")
    if pid is not None:
        _end_process_group(pid)
    # containerd shims of containers left running are their own sessions; they name the root
    for leftover in _processes_naming(root):
        _signal(leftover, signal.SIGKILL)
    for mount in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    if delete:
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            print(f"[deploy] could not delete {root}")


def _end_process_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _processes_naming(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _mounts_under(root: Path) -> list[str]:
    prefix = f"{root}/"
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(prefix) or point == str(root):
            mounts.append(point)
    return mounts


def _stage_python(prefix: Path, target: Path) -> None:
    """Copy the interpreter at ``prefix`` into ``target`` laid out as /usr/local."""
    lib = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    skip = shutil.ignore_patterns("__pycache__", "test", "tests", "idlelib", "tkinter",
                                  "turtledemo", "_tkinter*", "site-packages")  # fmt: skip
    (target / "bin").mkdir(parents=True)
    shutil.copy2(prefix / "bin" / lib, target / "bin" / lib)
    shutil.copytree(prefix / "lib" / lib, target / "lib" / lib, ignore=skip, symlinks=True)
    for shared in (prefix / "lib").glob("libpython3*.so*"):
        shutil.copy2(shared, target / "lib" / shared.name, follow_symlinks=False)
    site = prefix / "lib" / lib / "site-packages"
    for name in ("pip", "setuptools", "pkg_resources", "_distutils_hack"):
        if (site / name).is_dir():
            shutil.copytree(site / name, target / "lib" / lib / "site-packages" / name,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for info in [*site.glob("pip-*.dist-info"), *site.glob("setuptools-*.dist-info")]:
        shutil.copytree(info, target / "lib" / lib / "site-packages" / info.name)
    if (site / "distutils-precedence.pth").is_file():
        shutil.copy2(site / "distutils-precedence.pth", target / "lib" / lib / "site-packages")
    for alias in ("python3", "python"):
        (target / "bin" / alias).symlink_to(lib)
    # pip's own scripts name this machine's interpreter path; these name the image's
    for script in ("pip", "pip3", f"pip{sys.version_info[0]}.{sys.version_info[1]}"):
        path = target / "bin" / script
        path.write_text(f'#!/bin/sh\nexec /usr/local/bin/{lib} -m pip "$@"\n')
        path.chmod(0o755)


def _run(
    command: Sequence[str],
    env: dict[str, str],
    timeout: float,
    stdin=None,
    stderr_too: bool = False,
    stdin_text: str | None = None,
) -> str:
    try:
        result = subprocess.run(
            list(command), env=env, stdin=stdin, input=stdin_text, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if stderr_too else subprocess.PIPE, text=True,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise EngineError(f"{' '.join(command)} took over {timeout:.0f} s") from None
    if result.returncode != 0:
        output = (result.stdout + (result.stderr or ""))[-4000:]
        raise EngineError(f"{' '.join(command)} exited {result.returncode}:\n{output}")
    return result.stdout


def clean_stale_roots(parent: Path | None = None) -> list[Path]:
    """Stop and delete the engine roots of test processes that are gone."""
    removed = []
    for root in (parent or default_parent()).glob(f"{ROOT_PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not made by this module
        if _alive(owner):
            continue
        try:
            dockerd = int((root / "dockerd.pid").read_text())
        except (OSError, ValueError):
            dockerd = None
        if dockerd is not None and _alive(dockerd):
            _signal(dockerd, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _alive(dockerd) and time.monotonic() < deadline:
                time.sleep(0.5)
            _signal(dockerd, signal.SIGKILL)
        _stop_root(root, None, None)
        removed.append(root)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    if sys.argv[1:] == ["clean"]:
        for path in clean_stale_roots():
            print(f"removed the stale engine root {path}")
    else:
        sys.exit("usage: python -m cryptify_pipeline_tests.deployment.docker_engine clean")
