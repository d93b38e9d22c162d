"""Installs Debian packages a benchmark script needs, as ./bazelw does its own.

    import debian_packages
    debian_packages.ensure(["python3-joblib", "gnuplot-nox"], "metg")

Asks dpkg which of the packages are not installed (a few milliseconds when
all are) and installs those with apt-get (update, then install without
recommends), through sudo when not root. Exits naming the apt-get line to
run when it cannot install them itself. Shared by pool_compare.py and
metg.py.
"""
import os
import shutil
import subprocess
import sys


def missing(packages):
    """The packages dpkg does not report as installed."""
    out = []
    for pkg in packages:
        probe = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
            capture_output=True, text=True)
        if probe.returncode != 0 or probe.stdout.strip() != "installed":
            out.append(pkg)
    return out


def ensure(packages, who):
    """Installs whichever of `packages` are missing; `who` names the caller
    in messages."""
    todo = missing(packages)
    if not todo:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if sudo and shutil.which("sudo") is None:
        sys.exit(f"{who}: as root, run: apt-get update && apt-get install -y "
                 + " ".join(todo))
    print(f"{who}: installing {' '.join(todo)} from Debian's packages "
          "(the benchmark needs them)", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=True,
                   stdout=sys.stderr, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q",
                           "--no-install-recommends"] + todo,
                   check=True, stdout=sys.stderr, env=env)
