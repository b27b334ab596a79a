"""The lock (issue 39): requirements.lock pins every package that `make install` puts in the virtual
environment, each at a version pyproject.toml's ranges admit, with the hashes PyPI publishes (torch, a wheel
of this machine's, alone without), and the environment the tests run in holds exactly those versions.
No network but for the fresh-venv dry run (it reads the package index, as `make install` does)."""
from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from qa.config import PACKAGE_ROOT

LOCK = PACKAGE_ROOT / "requirements.lock"
PYPROJECT = PACKAGE_ROOT / "pyproject.toml"
EXTRAS = ("test", "postgres", "scale")   # what `make install` installs: test, which names the other two
UNHASHED = {"torch"}                      # installed on its own, first (see the Makefile)
ENTRY = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<hashes>(?:\s+--hash=sha256:[0-9a-f]{64})*)")


def read_lock() -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of hashes)}; fails on any line that is not `name==version [--hash ...]`."""
    entries: dict[str, tuple[str, int]] = {}
    logical = ""
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.strip()
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical = (logical + line).strip()
        if logical:
            m = ENTRY.fullmatch(logical)
            assert m, f"not an exact pin in {LOCK.name}: {logical[:200]}"
            name = canonicalize_name(m["name"])
            assert name not in entries, f"{name} twice in {LOCK.name}"
            entries[name] = (m["version"], m["hashes"].count("--hash="))
        logical = ""
    assert not logical, f"{LOCK.name} ends in a continued line"
    return entries


def project() -> tuple[str, list[str], dict[str, list[str]]]:
    meta = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    return meta["name"], meta["dependencies"], meta.get("optional-dependencies", {})


def direct_requirements() -> list[tuple[Requirement, str]]:
    """pyproject.toml's dependencies and those of EXTRAS, the project's own extras followed (test names
    article-qa[postgres]), each with where it was read, those whose markers hold here."""
    name, dependencies, optional = project()
    found: list[tuple[Requirement, str]] = [(Requirement(r), "dependencies") for r in dependencies]
    todo, seen = list(EXTRAS), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        assert extra in optional, f"pyproject.toml has no extra {extra!r}"
        for text in optional[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == canonicalize_name(name):
                todo.extend(req.extras)
            else:
                found.append((req, f"[{extra}]"))
    return [(r, where) for r, where in found if r.marker is None or r.marker.evaluate({"extra": ""})]


@functools.cache
def installed() -> dict[str, metadata.Distribution]:
    """{canonical name: distribution}, the one found first on sys.path, as imports would."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        found.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    return found


@pytest.fixture(scope="module")
def lock() -> dict[str, tuple[str, int]]:
    assert LOCK.is_file(), f"no {LOCK.name}: `make lock` writes it"
    return read_lock()


def test_every_direct_dependency_is_locked_at_a_version_its_range_admits(lock):
    wrong = []
    for req, where in direct_requirements():
        pinned = lock.get(canonicalize_name(req.name))
        if pinned is None:
            wrong.append(f"{req} ({where}): not in the lock")
        elif not req.specifier.contains(Version(pinned[0]), prereleases=True):
            wrong.append(f"{req} ({where}): the lock has {pinned[0]}")
    assert not wrong, f"pyproject.toml and {LOCK.name} disagree, run `make lock`: {wrong}"


def test_every_locked_file_is_hash_checked_but_torch(lock):
    unhashed = {name for name, (_, hashes) in lock.items() if not hashes}
    assert unhashed == UNHASHED, f"lines without a hash in {LOCK.name}: {sorted(unhashed)}, expected {sorted(UNHASHED)}"


def test_the_environment_holds_exactly_the_locked_versions(lock):
    wrong, here = [], installed()
    for name, (version, _) in sorted(lock.items()):
        if name not in here:
            wrong.append(f"{name}=={version}: not installed")
        elif Version(here[name].version) != Version(version):
            wrong.append(f"{name}=={version}: {here[name].version} installed")
    assert not wrong, f"the environment is not the lock's, run `make install`: {wrong}"


def test_the_lock_is_what_the_dependencies_need_no_more_no_less(lock):
    """Walked through the installed packages' own requirements (markers for this machine, the extras asked
    for): every package reached is in the lock, and every package in the lock is reached."""
    name = canonicalize_name(project()[0])
    env, here = default_environment(), installed()
    reached: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), set(r.extras)) for r, _ in direct_requirements()]
    while todo:
        dist, extras = todo.pop()
        if dist == name or (dist in reached and extras <= reached[dist]):
            continue
        reached[dist] = reached.get(dist, set()) | extras
        if dist not in here:
            continue  # reported by the test above
        for text in here[dist].requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ["", *reached[dist]]):
                todo.append((canonicalize_name(req.name), set(req.extras)))
    missing = sorted(set(reached) - set(lock))
    unneeded = sorted(set(lock) - set(reached))
    assert not missing and not unneeded, (f"{LOCK.name} is not the dependencies' closure, run `make lock`: "
                                          f"missing {missing}, not needed {unneeded}")


def _makefile_lock_install() -> list[str]:
    """The Makefile's install-from-the-lock command, as arguments after `pip`."""
    line = next(raw.strip() for raw in (PACKAGE_ROOT / "Makefile").read_text().splitlines()
                if "$(BIN)/pip install" in raw and "-r $(LOCK)" in raw)
    return [str(LOCK) if a == "$(LOCK)" else a for a in line.split()[1:]]


@pytest.mark.skipif(shutil.which("python3.11") is None, reason="no python3.11 here to make a fresh venv with")
def test_the_lock_installs_with_the_pip_a_new_venv_brings(tmp_path):
    """`make install` on a fresh machine: the pip that `python3.11 -m venv` brings (23.2) must accept the
    Makefile's command as it is. It once failed there as soon as lxml 6.2.1 was published: resolving
    justext's `lxml[html_clean]` picked the new release over the locked 6.2.0 and refused it as unpinned.
    A dry run resolves and checks hashes without installing (it needs the package index, as make does)."""
    venv = tmp_path / "venv"
    subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, timeout=120)
    args = _makefile_lock_install()
    assert "--no-deps" in args and "--require-hashes" in args
    # torch is installed before, on its own (the Makefile's step above), so here it is left out
    hashed = tmp_path / "hashed.lock"
    hashed.write_text(re.sub(r"(?m)^torch==\S+\n", "", LOCK.read_text(encoding="utf-8")), encoding="utf-8")
    assert not re.search(r"(?m)^torch==", hashed.read_text(encoding="utf-8"))
    args = [str(hashed) if a == str(LOCK) else a for a in args]
    run = subprocess.run([str(venv / "bin" / "pip"), *args, "--dry-run"], capture_output=True, text=True, timeout=600,
                         check=False)
    if run.returncode and re.search(r"(?i)connection|resolve host|network is unreachable", run.stderr):
        pytest.skip("the package index cannot be reached from here")
    assert run.returncode == 0, run.stderr[-2000:]
