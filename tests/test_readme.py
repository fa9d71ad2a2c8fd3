"""The README's set-up commands are the ones CI runs and the ones that exist."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks if "python3 -m venv" in b]


def test_readme_has_exactly_two_setup_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2, cmds
    assert "bgswap --no-gui --source demo" in cmds[0] and "pytest" in cmds[1]
    assert all("-c constraints.txt" in c for c in cmds)


def test_ci_runs_the_readme_test_command_in_a_fresh_venv():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci
    assert ci.index("rm -rf .venv-test") < ci.index(_readme_commands()[1])


def test_constraints_pin_every_dependency():
    pins = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    deps = {re.match(r"[A-Za-z0-9_.-]+", spec).group(0) for spec in specs}
    missing = {d.lower().replace("_", "-") for d in deps} - pins
    assert not missing, f"not in constraints.txt: {missing} (run tools/update_constraints.sh)"


def test_library_example_runs(tmp_path, monkeypatch):
    """The README's library example, as written, on the demo photo."""
    import cv2

    block = re.search(r"```python\n(import cv2\nfrom bgswap\.inference import .*?)```",
                      (ROOT / "README.md").read_text(), re.S).group(1)
    photo = cv2.imread(str(ROOT / "assets" / "demo" / "astronaut.jpg"))
    cv2.imwrite(str(tmp_path / "me.jpg"), photo)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    out = cv2.imread(str(tmp_path / "out.jpg"))
    assert out.shape == photo.shape
    # the face is kept as it was; the wall behind the shuttle (top right) is replaced by the blur
    assert abs(out[70:140, 190:260].astype(int) - photo[70:140, 190:260]).mean() < 3
    assert abs(out[:150, 470:].astype(int) - photo[:150, 470:]).mean() > 3
