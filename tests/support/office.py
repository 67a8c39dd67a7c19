"""LibreOffice for the tests: where it is, and why it cannot be driven here, if so.

LibreOffice's UNO bridge (Debian's python3-uno) works with the system interpreter only,
so scripts that drive it run in :data:`SYSTEM_PYTHON`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def libreoffice_missing() -> str | None:
    """Why LibreOffice cannot be driven here, or ``None`` when it can."""
    if SOFFICE is None:
        return ("LibreOffice is not installed (soffice not on PATH); install it with "
                "apt-get install -y --no-install-recommends libreoffice-calc-nogui python3-uno")
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing (LibreOffice's UNO bridge runs in it)"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import uno"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return (f"{SYSTEM_PYTHON} cannot import uno; install it with apt-get install -y "
                "--no-install-recommends python3-uno")
    return None


def resave(workbook: Path, scratch: Path, *, timeout: float = 180) -> None:
    """Open ``workbook`` in headless LibreOffice and save it over itself as .xlsx, as a
    merchant's LibreOffice would (its own profile under ``scratch``)."""
    assert SOFFICE is not None, "LibreOffice is not installed (soffice not on PATH)"
    out = scratch / "resaved"
    subprocess.run(
        [SOFFICE, "--headless", "--norestore",
         f"-env:UserInstallation={(scratch / 'lo-profile').as_uri()}",
         "--convert-to", "xlsx", "--outdir", str(out), str(workbook)],
        check=True, capture_output=True, timeout=timeout)
    shutil.copyfile(out / workbook.name, workbook)
