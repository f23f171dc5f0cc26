"""docs/testing.md's code blocks run: together, as one test file of a sample
project with the plugin turned on, as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_examples_of_docs_testing_md_pass(pytester: pytest.Pytester) -> None:
    blocks = python_blocks()
    tests = sum(len(re.findall(r"^(?:async )?def test_", b, flags=re.M)) for b in blocks)
    assert tests == 5
    pytester.makeini("[pytest]\nque_fixtures = true\nasyncio_mode = auto\n")
    pytester.makepyfile(test_doc="\n\n".join(blocks))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)
