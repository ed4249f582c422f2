"""The README's Python quickstart runs as written."""

import pathlib
import re


import pytest

ROOT = pathlib.Path(__file__).parent.parent.parent


@pytest.mark.parametrize("readme", [ROOT / "README.md", ROOT / "rcf-py" / "README.md"], ids=["workspace", "package"])
def test_readme_quickstart_runs(readme, capsys):
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    assert blocks, f"{readme} has a Python example"
    for block in blocks:
        exec(compile(block, str(readme), "exec"), {})
    assert "Verdict(" in capsys.readouterr().out
