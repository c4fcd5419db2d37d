"""The small output helpers of rddpm_signals._io (atomic writes are tested with bad input in test_bad_input.py)."""

from rddpm_signals._io import markdown_row, markdown_table


def test_markdown_table_is_header_separator_and_one_line_per_row():
    table = markdown_table(["a", "b"], [[1, "x"], [0.5, None]])
    assert table == "| a | b |\n|---|---|\n| 1 | x |\n| 0.5 | None |"
    assert markdown_table(("only",), []) == "| only |\n|---|"
    assert markdown_row(iter(["c", 2])) == "| c | 2 |"
