"""The Docker image files, checked without a Docker engine: linters, consistency with pyproject.toml, and the
entry point's behaviour with stand-in servers."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
SCRIPTS = [ROOT / "buildandrun.sh", ENTRYPOINT]


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} not installed (pip install {name}-bin / {name}-py)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK), f"{script.name} must be executable"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_finds_nothing(script):
    result = subprocess.run([_tool("shellcheck"), str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_image_installs_what_pyproject_declares_the_readme_way():
    text = DOCKERFILE.read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert text.splitlines()[2] == "FROM python:3.11-slim"
    # torch/torchvision from PyTorch's CPU index, with exactly the version ranges the package declares
    cpu = next(line for line in text.splitlines() if "download.pytorch.org/whl/cpu" in line)
    for dep in project["dependencies"]:
        if re.match(r"torch(vision)?\b", dep):
            assert f'"{dep}"' in cpu, f"{dep} is not installed from the CPU index as pyproject.toml pins it"
    # the README's editable install, with extras that exist
    match = re.search(r'pip install [^\n]*-e "\.\[([\w,]+)\]"', text)
    assert match, "the image must install the package editable, as the README does"
    missing = set(match.group(1).split(",")) - set(project.get("optional-dependencies", {}))
    assert not missing, f"extras {missing} are not in pyproject.toml"
    assert "jupyterlab" in text and "EXPOSE 8888 7860" in text
    assert re.search(r"^USER [1-9]\d*", text, re.M), "the image must not run as root"


def test_ports_are_published_on_localhost_only():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ports = [p for service in compose["services"].values() for p in service.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    for service in compose["services"].values():
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    for script in ("buildandrun.sh", "buildandrun.ps1"):
        published = re.findall(r"-p \"([^\"]+)\"", (ROOT / script).read_text())
        assert len(published) == 2 and all(p.startswith("127.0.0.1:") for p in published), script


def _stand_ins(tmp_path: Path) -> Path:
    """Fake jupyter-lab (prints its token, exits) and klugerhans (records its arguments, waits to be stopped)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "jupyter-lab").write_text('#!/bin/sh\necho "lab token=$JUPYTER_TOKEN args=$*"\nsleep 1\n')
    (bin_dir / "klugerhans").write_text(
        '#!/bin/sh\necho "web args=$*"\n[ -n "$STAND_IN_ONCE" ] && exit 0\n'
        "trap 'echo web stopped; exit 0' TERM\nwhile :; do sleep 0.1; done\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def _entrypoint(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(exist_ok=True)
    path = f"{_stand_ins(tmp_path)}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    work = tmp_path / "work"
    work.mkdir()
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        cwd=work,
        env={"PATH": path, "HOME": str(tmp_path)} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entrypoint_starts_both_prints_a_generated_token_and_stops_the_web_ui_with_the_lab(tmp_path):
    result = _entrypoint(tmp_path, "all")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    token = re.search(r"JupyterLab: http://127\.0\.0\.1:8888/lab\?token=([0-9a-f]{48})\b", out)
    assert token, out
    assert f"lab token={token.group(1)} " in out and "--ip=0.0.0.0 --port=8888" in out
    assert "web args=serve --host 0.0.0.0 --port 7860" in out and "web stopped" in out


def test_entrypoint_uses_the_given_token_and_checkpoint(tmp_path):
    lab = _entrypoint(tmp_path, "lab", JUPYTER_TOKEN="s3cret", LAB_PORT="9999")
    assert "lab token=s3cret " in lab.stdout and "token=s3cret" in lab.stdout and "--port=9999" in lab.stdout
    web = _entrypoint(tmp_path / "again", "web", KLUGERHANS_CHECKPOINT="runs/a", STAND_IN_ONCE="1")
    assert "web args=serve --host 0.0.0.0 --port 7860 --checkpoint runs/a" in web.stdout
