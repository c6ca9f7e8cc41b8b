"""The package as users get it: build the wheel and the sdist, install the wheel (not editable) into a fresh venv.

Then, in that venv, outside the repository: Airflow discovers the provider (``ProvidersManager``: the entry point,
the ``anaplan`` connection type), ``py.typed`` ships, and the emulator command runs with its bundled seed (the ready
line, a login, ``GET /2/0/workspaces``). The install uses uv with the committed constraints of the Airflow version
under test (uv's cache makes it quick; no network is needed once the cache holds the packages).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

READY = re.compile(r"Anaplan emulator listening on (http://\S+)")


def find_uv() -> str | None:
    for candidate in (shutil.which("uv"), str(REPO_ROOT / ".venvs" / "tools" / "bin" / "uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def clean_env(**extra: str) -> dict[str, str]:
    """No AIRFLOW_* or PYTHONPATH from the test process: the installed venv must stand on its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    uv = find_uv()
    if uv is None:
        pytest.skip("uv is not installed (./scripts/test installs it into .venvs/tools)")
    out = tmp_path_factory.mktemp("dist")
    run(uv, "build", "--quiet", "--out-dir", out, REPO_ROOT, cwd=out)
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return {"uv": Path(uv), "wheel": wheel, "sdist": sdist}


def test_wheel_and_sdist_contents(built: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    for needed in (
        "airflow_provider_anaplan/py.typed",
        "airflow_provider_anaplan/emulator/seed.json",
        "airflow_provider_anaplan/emulator/seed_data.json",
        "airflow_provider_anaplan/operators/__init__.py",
    ):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "example_dags/"))]
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(built["wheel"]).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text and "airflow_provider_anaplan:get_provider_info" in text

    with tarfile.open(built["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    for needed in ("pyproject.toml", "README.md", "airflow_provider_anaplan/py.typed"):
        assert needed in members, needed
    assert any(m.startswith("example_dags/anaplan_") for m in members)


def test_installed_wheel_is_discovered_and_runs_the_emulator(built: dict[str, Path], tmp_path: Path) -> None:
    import airflow

    version = airflow.__version__
    constraints = REPO_ROOT / "constraints" / f"airflow-{version}.txt"
    if not constraints.is_file():
        pytest.skip(f"no committed constraints for Airflow {version}")
    venv = tmp_path / "venv"
    env = clean_env(UV_PYTHON_DOWNLOADS="never")
    run(built["uv"], "venv", "--quiet", "-p", sys.executable, venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run(
        built["uv"],
        "pip",
        "install",
        "--quiet",
        "-p",
        python,
        "-c",
        constraints,
        built["wheel"],
        f"apache-airflow=={version}",
        cwd=tmp_path,
        env=env,
    )

    # Discovered by Airflow, from the venv's site-packages (not from this checkout), with py.typed.
    home = tmp_path / "airflow-home"
    probe = """
import importlib.metadata, importlib.resources, json
from airflow.providers_manager import ProvidersManager
import airflow_provider_anaplan
pm = ProvidersManager()
pm.initialize_providers_hooks()
info = pm.providers.get("airflow-provider-anaplan")
print(json.dumps({
    "version": info.version if info else None,
    "hook": pm.hooks["anaplan"].hook_class_name if "anaplan" in pm.hooks else None,
    "file": airflow_provider_anaplan.__file__,
    "typed": (importlib.resources.files("airflow_provider_anaplan") / "py.typed").is_file(),
    "editable": importlib.metadata.distribution("airflow-provider-anaplan").read_text("direct_url.json"),
}))
"""
    out = run(python, "-c", probe, cwd=tmp_path, env=clean_env(AIRFLOW_HOME=str(home)))
    found = json.loads(out.strip().splitlines()[-1])
    assert found["version"] == "0.1.0.dev0"
    assert found["hook"] == "airflow_provider_anaplan.hooks.anaplan.AnaplanHook"
    assert found["file"].startswith(str(venv)) and "site-packages" in found["file"]
    assert found["typed"] is True
    assert found["editable"] is None or '"editable": true' not in found["editable"]

    # The emulator command, run from the installed package with its bundled seed.
    proc = subprocess.Popen(
        [str(python), "-m", "airflow_provider_anaplan.emulator", "--port", "0"],
        cwd=tmp_path,
        env=clean_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = READY.search(line)
        assert match, f"no ready line: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        url = match.group(1)
        basic = base64.b64encode(f"{DEFAULT_USER_EMAIL}:{DEFAULT_USER_PASSWORD}".encode()).decode()
        with httpx.Client(base_url=url, timeout=10) as client:
            login = client.post("/token/authenticate", headers={"Authorization": f"Basic {basic}"})
            assert login.status_code == 201, login.text
            token = login.json()["tokenInfo"]["tokenValue"]
            workspaces = client.get("/2/0/workspaces", headers={"Authorization": f"AnaplanAuthToken {token}"})
        assert workspaces.status_code == 200, workspaces.text
        assert {w["name"] for w in workspaces.json()["workspaces"]} == {"FP&A Production", "HR Planning"}
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
