"""Tables for people, the same data unchanged for scripts."""

import json

from cryptify_pipeline.cli.output import render

RUNS = [
    {"run_id": "5f1c2d9e", "job": "collect_job", "status": "SUCCESS",
     "partition": "2026-11-27-13:00", "max_runtime_seconds": "1800"},
    {"run_id": "0a7b", "job": "train_job", "status": "FAILURE", "partition": "2026-11-26",
     "max_runtime_seconds": None},
]  # fmt: skip


def test_a_list_is_a_table_with_aligned_columns():
    lines = render("runs", RUNS, as_json=False).splitlines()
    header = lines[0]
    assert header.split() == ["run", "id", "job", "status", "partition", "time", "limit", "(s)"]
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    assert lines[2].split() == ["5f1c2d9e", "collect_job", "SUCCESS", "2026-11-27-13:00", "1800"]
    # every cell starts where its header does
    for row, values in [(lines[2], RUNS[0]), (lines[3], RUNS[1])]:
        assert row.index(values["job"]) == header.index("job")
        assert row.index(values["status"]) == header.index("status")
        assert row.index(values["partition"]) == header.index("partition")
    assert lines[3].rstrip().endswith("-")  # no time limit
    assert len(lines) == 4


def test_a_record_is_aligned_label_value_lines():
    text = render("status", {"run_id": "5f1c", "status": "FAILURE", "reason": "candles: a\nb"},
                  as_json=False)  # fmt: skip
    lines = text.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:3]] == ["run id", "status", "reason"]
    offsets = {
        line.index(value)
        for line, value in zip(lines, ["5f1c", "FAILURE", "candles"], strict=False)
    }
    assert len(offsets) == 1  # values start in one column
    assert lines[3].strip() == "b" and lines[3].index("b") == offsets.pop()


def test_json_is_the_data_unchanged():
    assert json.loads(render("runs", RUNS, as_json=True)) == RUNS
    assert render("runs", [], as_json=False) == "(none)"
    assert render("db", "postgresql://x", as_json=False) == "postgresql://x"
