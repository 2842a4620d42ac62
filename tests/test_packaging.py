"""The wheel as a new user installs it: a fresh virtualenv outside the checkout.

The wheel is built from a copy of the package's files (so the checkout gets
no build/ directory), installed without its dependencies into a new
virtualenv that sees the shared one's packages through a .pth line (no
registry needed), and run from a directory with no checkout in sight.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ROOT, free_port


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fresh virtualenv's bin directory, the wheel installed into it."""
    base = tmp_path_factory.mktemp("wheel")
    tree = base / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    for package in ("app", "engine"):
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    wheels = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(tree),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheels.glob("mremap_viz-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    purelib = next((env_dir / "lib").glob("python3*/site-packages"))
    # The dependencies, from the shared virtualenv: a bare path line, so its own
    # .pth files (an editable install of a checkout) are not processed.
    (purelib / "shared-deps.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield env_dir / "bin"


def _outside(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    return env | {"MREMAP_VIZ_DATA": str(tmp_path / "data")}


def test_the_wheel_carries_what_the_app_reads(installed: Path, tmp_path: Path) -> None:
    code = (
        "import app, engine.verify, importlib.resources as r;"
        "print(app.__file__);"
        "a = r.files('app'); e = r.files('engine');"
        "print(sorted(p.name for p in (a / 'static' / 'vendor').iterdir()));"
        "print((a / 'templates' / 'scenario.html').is_file(), (a / 'static' / 'app.css').is_file());"
        "print((e / 'verify' / 'executor.c').is_file(), len(list((e / 'scenarios').iterdir())))"
    )
    done = subprocess.run(
        [str(installed / "python"), "-c", code],
        cwd=tmp_path,
        env=_outside(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    where, vendor, app_files, engine_files = done.stdout.splitlines()
    assert where.startswith(str(installed.parent)) and str(ROOT) not in where
    assert any(n.startswith("htmx-") and n.endswith(".min.js") for n in eval(vendor))
    assert any(n.endswith(".LICENSE") for n in eval(vendor))
    assert app_files == "True True"
    gallery = len(list((ROOT / "engine" / "scenarios").glob("*.c")))
    assert engine_files == f"True {gallery}"


def test_the_installed_command_serves_a_step_page(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(installed / "mremap-viz"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_outside(tmp_path) | {"MREMAP_VIZ_WARM_PAGES": "20"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/index.json", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the installed server did not start"
                time.sleep(0.2)
        while (health := httpx.get(base + "/healthz").json())["status"] != "ready":
            assert time.monotonic() < deadline, f"the warm-up did not finish: {health}"
            time.sleep(0.2)
        assert health["warmup"]["pages"] == 20 and health["warmup"]["stopped"] == "WARM_PAGES"
        page = httpx.get(base + "/scenarios/dontunmap?step=3", timeout=60)
        assert page.status_code == 200
        assert "MREMAP_DONTUNMAP" in page.text
        scripts = [part.split('"')[0] for part in page.text.split('<script src="')[1:]]
        assert scripts and all(httpx.get(base + s).status_code == 200 for s in scripts)
        link = httpx.post(base + "/api/share", json={"source": "munmap(0, 4096);\n"})
        assert link.status_code == 200, link.text
        assert httpx.get(base + link.json()["url"]).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_installed_command_runs_its_own_gallery(installed: Path, tmp_path: Path) -> None:
    env = _outside(tmp_path)
    for name in ("dontunmap", "dontunmap.c"):
        done = subprocess.run(
            [str(installed / "mremap-viz"), "run", name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "MREMAP_DONTUNMAP" in done.stdout
    shown = subprocess.run(
        [str(installed / "mremap-viz"), "show", "dontunmap"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout == (ROOT / "engine" / "scenarios" / "dontunmap.c").read_text()
