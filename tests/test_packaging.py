"""A wheel built from a checkout carries the production build of the frontend.

An editable install (``scripts/setup``) leaves the development build (unminified, with
source maps) in ``ipylogfwd/labextension``. A wheel built from that checkout afterwards must
not ship it: it must hold the minified production build, without source maps, and what
JupyterLab needs to load it (``package.json`` naming an entry point the wheel holds, and
``install.json``).

The test reproduces that on a copy of this checkout's files (tracked and new, as they are in
the working tree, so uncommitted changes are tested too): a development build, then
``pip wheel`` as a user would run it. ``labextension/node_modules`` is copied along, so npm
has nothing to download. About 15-25 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "labextension" / "node_modules"
SHARE = "share/jupyter/labextensions/ipylogfwd/"

# A line of readable source: indentation, then code. Minified output has none.
INDENTED = re.compile(rb"^[ \t]{2,}\S", re.MULTILINE)
# The comment a bundler appends to a file that has a source map.
MAP_COMMENT = re.compile(rb"^//# sourceMappingURL=", re.MULTILINE)


def run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure, fail the test with its output."""
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s:\n{out[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout[-8000:]}")
    return proc.stdout


def copy_checkout(dest: Path) -> None:
    """Copy the files git would commit after `git add -A` (the working tree's versions)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"not a git checkout ({e}): this test builds from a checkout, as scripts/test runs it")
    for name in listing.decode().split("\0"):
        src = ROOT / name
        if not name or not src.is_file():  # deleted in the working tree
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def build_env() -> dict[str, str]:
    """The environment a user has, with this venv's scripts (jupyter-builder) on PATH."""
    env = dict(os.environ)
    for skip in ("HATCH_JUPYTER_BUILDER_SKIP_NPM", "SKIP_JUPYTER_BUILDER"):
        env.pop(skip, None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def build_wheel_from_developed_copy(src: Path, dist: Path, env: dict[str, str]) -> int:
    """Copy the checkout to src, run a development build there, then `pip wheel` it into dist.
    Returns the size of the development build's js files."""
    copy_checkout(src)
    labext = src / "labextension"
    if NODE_MODULES.is_dir():
        # A copy, not a symlink: npm replaces a symlinked node_modules with a fresh install.
        run(["cp", "-a", str(NODE_MODULES), str(labext / "node_modules")], src, 120)
    else:
        run(["npm", "install", "--no-audit", "--no-fund"], labext, 600, env)

    # What `scripts/setup` (an editable install) leaves behind: the development build.
    run(["npm", "run", "build"], labext, 300, env)
    dev_static = src / "ipylogfwd" / "labextension" / "static"
    assert any(dev_static.glob("*.js.map")), "the development build left no source maps"
    dev_size = sum(p.stat().st_size for p in dev_static.glob("*.js"))

    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(dist), str(src)],
        src.parent,
        600,
        env,
    )
    return dev_size


@pytest.mark.timeout(900)
def test_wheel_from_a_developed_checkout_ships_the_production_frontend(tmp_path: Path) -> None:
    env = build_env()
    if shutil.which("npm", path=env["PATH"]) is None:
        pytest.fail("npm is not on PATH: scripts/setup needs it, and a wheel is not built from a checkout without it")
    if shutil.which("jupyter-builder", path=env["PATH"]) is None:
        pytest.fail("jupyter-builder is not in this venv: install the 'lab' extra (scripts/test does)")

    src = tmp_path / "checkout"
    try:
        dev_size = build_wheel_from_developed_copy(src, tmp_path / "dist", env)
    finally:
        shutil.rmtree(src, ignore_errors=True)  # with its 200+ MB of node_modules
    (wheel,) = (tmp_path / "dist").glob("ipylogfwd-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        ext = {
            name.split(SHARE, 1)[1]: name
            for name in zf.namelist()
            if ".data/data/" in name and SHARE in name
        }
        assert "package.json" in ext, sorted(ext)
        assert "install.json" in ext, sorted(ext)
        static = {rel: name for rel, name in ext.items() if rel.startswith("static/")}
        maps = sorted(rel for rel in static if rel.endswith(".map"))
        assert not maps, f"the wheel ships source maps (a development build): {maps}"

        js = {rel: zf.read(name) for rel, name in static.items() if rel.endswith(".js")}
        assert js, sorted(ext)
        load = json.loads(zf.read(ext["package.json"]))["jupyterlab"]["_build"]["load"]
        assert load in ext, f"package.json loads {load}, which the wheel lacks: {sorted(ext)}"

        largest, text = max(js.items(), key=lambda item: len(item[1]))
        indented = INDENTED.findall(text)
        assert not indented, (
            f"{largest} ({len(text)} bytes) is not minified: {len(indented)} indented lines, "
            f"e.g. {indented[0][:80]!r}"
        )
        pointing = sorted(rel for rel, body in js.items() if MAP_COMMENT.search(body))
        assert not pointing, f"js files that point to source maps: {pointing}"
        size = sum(len(body) for body in js.values())
        assert size < dev_size * 0.75, f"{size} bytes of js; the development build has {dev_size}"
