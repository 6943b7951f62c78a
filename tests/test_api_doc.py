"""docs/api.md: every python code block runs, in order, in one namespace."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_api_walkthrough_runs(monkeypatch, capsys):
    from xbar import device_models

    monkeypatch.setattr(device_models, "ERROR_MODELS", dict(device_models.ERROR_MODELS))
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 8, "the walk-through lost its code blocks"
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "nJ per inference" in out and "95% CI" in out
    assert namespace["summary"].accuracy > 0.9 and namespace["report"]["total_j"] > 0
