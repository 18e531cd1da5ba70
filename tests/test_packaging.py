"""The package as users get it (issue 15): the wheel installs only ``threadhost`` (the
examples inside it, ``threadhost serve --example mylib`` works from it), the metadata is
complete (SPDX license, classifiers), psutil is an extra, the sdist carries every file its
tests need and they collect from it, and ``mypy --strict`` sees the README's development
install (``make setup``: an editable install in compat mode).

The sdist and the wheel are built once per session with ``python -m build --no-isolation``
(setuptools and build come with the ``test`` extra: no network)."""

from __future__ import annotations

import ast
import email.parser
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import threadhost
from tests.conftest import free_endpoint, write_mylib_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
VERSION = threadhost.__version__


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("THREADHOST_") and k != "PYTHONPATH"}


def _git_files() -> list[str] | None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return [f for f in proc.stdout.split("\0") if f and (ROOT / f).exists()]


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, and the wheel built from it (``python -m build``'s default)."""
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("no pyproject.toml")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=280,
                          env=_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


# ----------------------------------------------------------------------------- the wheel


def test_wheel_installs_only_threadhost(dists: dict[str, Path]) -> None:
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    assert {n.split("/", 1)[0] for n in names} == {"threadhost",
                                                   f"threadhost-{VERSION}.dist-info"}
    for needed in ("threadhost/py.typed", "threadhost/data/golden.json",
                   "threadhost/gate/core.py", "threadhost/examples/__init__.py",
                   "threadhost/examples/mylib.py", "threadhost/examples/mylib_adapter.py",
                   "threadhost/examples/mylib_proxy.py",
                   f"threadhost-{VERSION}.dist-info/licenses/LICENSE"):
        assert needed in names, needed
    # every module of the source tree is in the wheel (a new subpackage must be listed in
    # pyproject.toml's [tool.setuptools] packages)
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "threadhost").rglob("*.py")
              if "__pycache__" not in p.parts}
    assert source <= set(names), sorted(source - set(names))
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_every_package_is_listed() -> None:
    """pyproject.toml lists the packages (the examples folder is mapped to
    threadhost.examples, so automatic discovery cannot be used)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "threadhost").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found | {"threadhost.examples", "threadhost.data"} == listed


def test_wheel_metadata(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        text = wheel.read(f"threadhost-{VERSION}.dist-info/METADATA").decode()
    meta = email.parser.Parser().parsestr(text)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert not [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier")
    requires = meta.get_all("Requires-Dist") or []
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if r.startswith("psutil")], core
    for extra in ("stress", "bench", "test"):
        assert any(r.startswith("psutil") and f'extra == "{extra}"' in r for r in requires), extra


def test_installed_wheel_serves_the_example(dists: dict[str, Path], tmp_path: Path) -> None:
    """Installed from the wheel (no checkout on sys.path): no top-level ``examples``;
    ``threadhost serve --example mylib`` serves ``threadhost.examples.mylib_adapter``; its
    proxy matches."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-compile", "--target", str(site), str(dists["wheel"])],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in site.iterdir()} - {"bin"} == {"threadhost",
                                                        f"threadhost-{VERSION}.dist-info"}
    work = tmp_path / "work"  # not the checkout: nothing to import from the cwd
    work.mkdir()
    # -S: no .pth files, so not the development install's path to the checkout; the
    # dependencies come from the virtual environment's site-packages
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(site),
                                                    sysconfig.get_paths()["purelib"]])}
    probe = subprocess.run([sys.executable, "-S", "-c", (
        "import importlib.util, json, threadhost\n"
        "from threadhost.adapter import load_adapter\n"
        "from threadhost.cli import example_target\n"
        "import threadhost.examples.mylib_proxy as proxy\n"
        "spec = load_adapter(example_target('mylib'))\n"
        "print(json.dumps({'file': threadhost.__file__,\n"
        "                  'examples': importlib.util.find_spec('examples') is not None,\n"
        "                  'target': example_target('mylib'),\n"
        "                  'same': spec.fingerprint == proxy.FINGERPRINT}))\n")],
        cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(site))
    assert found == {**found, "examples": False, "target": "threadhost.examples.mylib_adapter",
                     "same": True}

    config = write_mylib_config(tmp_path / "mylib.toml")
    ep = free_endpoint()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-S", "-m", "threadhost", "serve", "--example", "mylib",
             "--endpoint", ep, "--policy", "manual"], cwd=work, stdout=out,
            stderr=subprocess.STDOUT, env={**env, "MYLIB_CONFIG": str(config)},
            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            call = subprocess.run([sys.executable, "-S", "-m", "threadhost", "call", ep, "calc",
                                   "5", "--timeout", "2s"], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=60)
            if call.returncode == 0:
                break
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, (call.stderr, log.read_text())
            time.sleep(0.3)
        assert call.stdout == "6\n"
        status = subprocess.run([sys.executable, "-S", "-m", "threadhost", "status", ep,
                                 "--json"], cwd=work, env=env, capture_output=True, text=True,
                                timeout=60)
        assert json.loads(status.stdout)["adapter"] == "threadhost.examples.mylib_adapter:Mylib"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, log.read_text()


# ----------------------------------------------------------------------------- the sdist


def test_sdist_has_every_tracked_file(dists: dict[str, Path]) -> None:
    tracked = _git_files()
    if tracked is None:
        pytest.skip("not a git checkout")
    with tarfile.open(dists["sdist"]) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers()
                   if m.isfile() and "/" in m.name}
    missing = sorted(set(tracked) - members - {".gitignore"})
    assert not missing, f"add these to MANIFEST.in: {missing}"
    assert "LICENSE" in members and "PKG-INFO" in members
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]
    assert not [m for m in members if m.split("/")[0] in (".venv", ".git", "build", "dist")]


def test_sdist_tests_collect_and_run(dists: dict[str, Path], tmp_path: Path) -> None:
    """Unpacked, the sdist's own tests import everything they need (every test module
    collects) and a few run, against the sdist's threadhost."""
    with tarfile.open(dists["sdist"]) as tar:
        tar.extractall(tmp_path, filter="data")
    (src,) = tmp_path.iterdir()
    env = _env()
    which = subprocess.run([sys.executable, "-c", "import threadhost; print(threadhost.__file__)"],
                           cwd=src, env=env, capture_output=True, text=True, timeout=60)
    assert which.stdout.strip() == str(src / "threadhost" / "__init__.py"), which.stderr
    collect = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider"], cwd=src, env=env,
                             capture_output=True, text=True, timeout=240)
    assert collect.returncode == 0, collect.stdout[-4000:] + collect.stderr[-2000:]
    assert "error" not in collect.stdout.splitlines()[-1].lower(), collect.stdout[-2000:]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_cli.py", "-k", "parse_value or signatures or describe_text",
                          "tests/test_golden.py"], cwd=src, env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


# ----------------------------------------------------------------------------- development set-up


def _editable_checkout() -> bool:
    """threadhost is installed editable from this checkout (the checkout's own
    threadhost.egg-info, found first from the checkout, is not an installation)."""
    for dist in metadata.distributions(name="threadhost"):
        info = json.loads(dist.read_text("direct_url.json") or "{}")
        if info.get("dir_info", {}).get("editable") and Path(
                info.get("url", "").removeprefix("file://")).resolve() == ROOT:
            return True
    return False


MYPY_SCRIPT = '''\
import threadhost
from examples.mylib_proxy import Client, calc, init

import my_proxy


def total(endpoint: str) -> int:
    init(endpoint, 2.0)
    with my_proxy.Client(endpoint, 2.0) as lib:
        first: int = lib.calc(5)
    with Client(endpoint, 2.0) as other:
        second: int = other.calc(6)
    version: str = threadhost.__version__
    return first + second + calc(7) + len(version)
'''


@pytest.mark.skipif(not _editable_checkout(),
                    reason="threadhost is not installed editable from this checkout")
def test_mypy_strict_sees_the_development_install(tmp_path: Path) -> None:
    """The README's set-up (``make setup``): ``mypy --strict`` on a user's script outside
    the checkout that imports threadhost, the checkout's ``examples.mylib_proxy`` and a
    proxy generated next to the script. The default editable mode's import hook is
    invisible to mypy ("Cannot find implementation or library stub for module named
    threadhost"); the compat mode's .pth file is not."""
    gen = subprocess.run([sys.executable, "-m", "threadhost", "proxy", "examples.mylib_adapter",
                          "-o", str(tmp_path / "my_proxy.py")], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    (tmp_path / "script.py").write_text(MYPY_SCRIPT)
    (tmp_path / "wrong.py").write_text(
        "from examples.mylib_proxy import calc\n\nresult: str = calc(5)\n")

    def mypy(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                               str(tmp_path / ".mypy_cache"), name], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=240)

    ok = mypy("script.py")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Success: no issues found in 1 source file" in ok.stdout
    # and mypy really sees the types (not Any): a wrong annotation is an error
    wrong = mypy("wrong.py")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert 'Incompatible types in assignment (expression has type "int", variable has type ' \
           '"str")' in wrong.stdout


# ----------------------------------------------------------------------------- small things


def test_license() -> None:
    import tomllib

    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "psutil" not in " ".join(project["dependencies"])


def test_psutil_is_imported_only_inside_functions() -> None:
    """The core never needs psutil: no module of threadhost imports it at import time."""
    for path in (ROOT / "threadhost").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "psutil"], path


def test_stress_without_psutil_says_what_to_install() -> None:
    proc = subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "sys.modules['psutil'] = None  # not installed\n"
        "import threadhost.tools.stress\n"
        "threadhost.tools.stress._rss_mb(1)\n")], cwd=ROOT, env=_env(), capture_output=True,
        text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "threadhost.tools.stress needs psutil: pip install 'threadhost[stress]'")
