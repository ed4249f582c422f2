"""The README's Python quickstart runs as written."""

import pathlib
import re


def test_readme_quickstart_runs(capsys):
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has a Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "Verdict(" in capsys.readouterr().out
