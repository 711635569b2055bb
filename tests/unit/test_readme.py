"""The README's promises about the tests hold: every case of "When something goes wrong" names
tests that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fault_cases() -> dict[str, list[str]]:
    """Case -> pytest node ids, from the README's list under the fault table."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<summary>The tests of each case</summary>")[1].split("</details>")[0]
    cases: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line.startswith("- "):
            case = cases.setdefault(line[2:].rstrip(":"), [])
        elif line.strip().startswith("- `"):
            case.append(line.strip()[3:-1])
    return cases


def test_every_fault_case_names_tests_that_exist():
    cases = fault_cases()
    assert len(cases) >= 21 and all(cases.values()), cases
    for case, node_ids in cases.items():
        for node_id in node_ids:
            file, _, test = node_id.partition("::")
            source = (ROOT / file).read_text()
            assert re.search(rf"^def {test.partition('[')[0]}\(", source, re.M), (case, node_id)
