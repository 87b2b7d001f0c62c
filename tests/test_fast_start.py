"""The start-up shortcut of `netrun validate`: no plugin discovery, nothing else broken."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return out.stdout.strip()


def test_validate_does_not_load_importlib_metadata() -> None:
    code = (
        "import sys\nfrom netrun.cli import main\n"
        "try:\n    main(['validate', 'networks'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('importlib.metadata' in sys.modules, type(sys.modules['pydantic.plugin._loader']).__name__)\n"
    )
    assert _run(code).splitlines()[-1] == "False _NoPlugins"


def test_the_stand_in_loads_the_real_loader_for_anything_else() -> None:
    code = (
        "from netrun._fast_start import skip_pydantic_plugins\nskip_pydantic_plugins()\n"
        "import sys\nimport pydantic.plugin\nloader = sys.modules['pydantic.plugin._loader']\n"
        "assert tuple(loader.get_plugins()) == ()\n"
        "group = loader.PYDANTIC_ENTRY_POINT_GROUP\n"  # not on the stand-in: the real module loads
        "print(group, type(sys.modules['pydantic.plugin._loader']).__name__)\n"
    )
    assert _run(code) == "pydantic module"
