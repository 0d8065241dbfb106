"""Safe YAML: positions, duplicate keys, bombs, depth, encodings, tags, merge keys."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rollwave.errors import Problem, ValidationFailed
from rollwave.yamlio import dump_yaml, format_path, load_yaml, parse_yaml


def problems_of(source: str | bytes, **limits: int) -> list[Problem]:
    with pytest.raises(ValidationFailed) as caught:
        parse_yaml(source, "f.yaml", **limits)
    return caught.value.problems


def one_problem(source: str | bytes, **limits: int) -> Problem:
    problems = problems_of(source, **limits)
    assert len(problems) == 1, [p.render() for p in problems]
    return problems[0]


# --- positions --------------------------------------------------------------------------------


def test_positions_of_keys_and_items() -> None:
    doc = parse_yaml("id: acme\ninstances:\n  prod:\n    tags:\n      - a\n      - b\n", "f")
    assert doc.position_of(("id",)) == (1, 1)
    assert doc.position_of(("instances", "prod")) == (3, 3)
    assert doc.line_of(("instances", "prod", "tags", 1)) == 6
    # an unknown path falls back to its nearest located ancestor
    assert doc.line_of(("instances", "prod", "missing", "deeper")) == 3
    assert doc.line_of(()) is None


def test_problem_is_located() -> None:
    doc = parse_yaml("a:\n  b: 1\n", "x.yaml")
    problem = doc.problem(("a", "b"), "bad b", hint="fix it")
    assert (problem.file, problem.line, problem.column, problem.path) == ("x.yaml", 2, 3, "a.b")
    assert problem.render() == "x.yaml:2:3: bad b (at a.b)\n    hint: fix it"


def test_format_path() -> None:
    assert format_path(("instances", 0, "tags")) == "instances[0].tags"
    assert format_path(()) == "(document)"
    assert format_path((0, "a")) == "[0].a"


def test_empty_document_is_none() -> None:
    assert parse_yaml("", "f").data is None
    assert parse_yaml("# only a comment\n", "f").data is None


# --- values -----------------------------------------------------------------------------------


def test_times_of_day_stay_text_not_base_60() -> None:
    doc = parse_yaml("start: 22:00\nend: 06:00\nlong: 1:30:00\nquoted: '22:00'\n", "f")
    assert doc.data == {"start": "22:00", "end": "06:00", "long": "1:30:00", "quoted": "22:00"}


def test_dates_stay_text_and_non_finite_floats_stay_text() -> None:
    doc = parse_yaml("when: 2026-12-20T00:00:00Z\nday: 2026-12-20\nx: .inf\ny: .nan\n", "f")
    assert doc.data == {"when": "2026-12-20T00:00:00Z", "day": "2026-12-20", "x": ".inf",
                        "y": ".nan"}


def test_plain_json_types() -> None:
    doc = parse_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: [1, x]\nf: {g: h}\n", "f")
    assert doc.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": [1, "x"], "f": {"g": "h"}}


def test_keys_yaml_11_renames_are_remembered() -> None:
    doc = parse_yaml("instances:\n  off: 1\n  'no': 2\n  0x10: 3\n  plain: 4\n", "f")
    assert doc.data == {"instances": {"false": 1, "no": 2, "16": 3, "plain": 4}}
    assert doc.renamed_keys == {("instances", "false"): "off", ("instances", "16"): "0x10"}


# --- refusals ---------------------------------------------------------------------------------


def test_duplicate_keys_name_both_lines() -> None:
    problems = problems_of("id: a\nname: x\nid: b\ninner:\n  k: 1\n  k: 2\n")
    assert [(p.line, p.message) for p in problems] == [
        (3, "duplicate key 'id' (first set on line 1)"),
        (6, "duplicate key 'k' (first set on line 5)"),
    ]
    assert all(p.code == "yaml.invalid" for p in problems)


def test_syntax_error_has_line_and_column() -> None:
    problem = one_problem("a: [1, 2\nb: 3\n")
    assert problem.code == "yaml.syntax"
    assert problem.line is not None
    assert problem.column is not None
    problem = one_problem("a:\n  b: 1\n c: 2\n")
    assert problem.line == 3


def test_several_documents_are_refused_with_a_hint() -> None:
    problem = one_problem("a: 1\n---\nb: 2\n")
    assert problem.line == 2
    assert "one document" in (problem.hint or "")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    problem = one_problem("\n".join(lines) + "\n")
    # not a benchmark: a generous bound against the old behaviour (expanding it took 12 s)
    assert time.perf_counter() - started < 5.0
    assert problem.code == "yaml.too_big"
    assert "alias bomb" in problem.message
    assert problem.line is not None


def test_modest_alias_reuse_is_fine() -> None:
    doc = parse_yaml("base: &b {x: 1}\nuses: [*b, *b, *b]\n", "f")
    assert doc.data["uses"] == [{"x": 1}] * 3


def test_recursive_alias_is_refused() -> None:
    problem = one_problem("a: &a [1, *a]\n")
    assert "recursive" in problem.message


def test_node_limit_is_configurable() -> None:
    problem = one_problem("[" + ",".join(["1"] * 50) + "]", max_nodes=10)
    assert "more than 10 values" in problem.message


def test_depth_limits() -> None:
    # libyaml refuses absurd nesting itself; our own limit catches the rest
    assert one_problem("a: " + "[" * 5000 + "]" * 5000).code == "yaml.syntax"
    problem = one_problem("a: " + "[" * 20 + "]" * 20, max_depth=10)
    assert problem.code == "yaml.too_big"
    assert "deeper than 10" in problem.message
    assert parse_yaml("a: " + "[" * 20 + "]" * 20, "f").data is not None


def test_not_utf8_names_the_line() -> None:
    problem = one_problem("a: 1\nname: Caf\xe9\n".encode("latin-1"))
    assert (problem.code, problem.line) == ("yaml.encoding", 2)
    assert "0xe9" in problem.message
    assert "iconv" in (problem.hint or "")


def test_utf16_is_named() -> None:
    problem = one_problem("a: 1\n".encode("utf-16"))
    assert "UTF-16" in problem.message


def test_utf8_bom_is_accepted() -> None:
    doc = parse_yaml(b"\xef\xbb\xbfid: acme\n", "f")
    assert doc.data == {"id": "acme"}
    assert doc.line_of(("id",)) == 1


def test_control_characters_are_refused_with_a_line() -> None:
    problem = one_problem("a: 1\nb: x\x00y\n")
    assert problem.line == 2
    assert "U+0000" in problem.message


@pytest.mark.parametrize("source", [
    "a: !!python/object/apply:os.system ['echo pwned']\n",
    "a: !!python/object:builtins.dict {}\n",
    "a: !custom value\n",
    "a: !!python/name:os.system\n",
])
def test_language_specific_and_custom_tags_are_refused(source: str) -> None:
    problem = one_problem(source)
    assert "unsupported YAML tag" in problem.message
    assert problem.line == 1


def test_values_a_standard_tag_cannot_read_are_located() -> None:
    problem = one_problem("x: 1\na: !!int abc\n")
    assert problem.line == 2
    assert "abc" in problem.message
    problem = one_problem("a: " + "9" * 5000 + "\n")
    assert "cannot read value" in problem.message


def test_non_scalar_keys_are_refused() -> None:
    assert "plain scalars" in one_problem("? [a, b]\n: 1\n").message


# --- merge keys -------------------------------------------------------------------------------


def test_merge_keys_explicit_wins_wherever_written() -> None:
    text = ("base: &b {x: 1, y: 2, z: {deep: 1}}\n"
            "one:\n  <<: *b\n  y: 20\n"
            "two:\n  y: 30\n  <<: *b\n"
            "three:\n  <<: [*b, {w: 4}]\n")
    doc = parse_yaml(text, "f")
    assert doc.data["one"] == {"y": 20, "x": 1, "z": {"deep": 1}}
    assert doc.data["two"] == {"y": 30, "x": 1, "z": {"deep": 1}}
    assert doc.data["three"] == {"x": 1, "y": 2, "z": {"deep": 1}, "w": 4}
    assert doc.line_of(("one", "y")) == 4      # the explicit key
    assert doc.line_of(("two", "y")) == 6
    assert doc.line_of(("one", "x")) == 1      # a merged key: where the anchor wrote it


def test_merge_of_a_scalar_is_refused() -> None:
    assert "merge needs a mapping" in one_problem("a: &a 1\nb:\n  <<: *a\n").message


# --- files ------------------------------------------------------------------------------------


def test_load_yaml_reads_files_and_names_them(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("id: acme\n", encoding="utf-8")
    assert load_yaml(path, display="customers/c.yaml").file == "customers/c.yaml"


def test_load_yaml_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 200 + "\n")
    with pytest.raises(ValidationFailed, match=r"big\.yaml") as caught:
        load_yaml(path, max_bytes=100)
    assert "byte limit" in caught.value.problems[0].message


def test_load_yaml_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        load_yaml(tmp_path / "nope.yaml", display="nope.yaml")
    assert caught.value.problems[0].message.startswith("cannot read file")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ValidationFailed) as caught:
        load_yaml(tmp_path / "dir.yaml")
    assert "not a regular file" in caught.value.problems[0].message


def test_load_yaml_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ValidationFailed) as caught:
        load_yaml(fifo)
    assert "not a regular file" in caught.value.problems[0].message


def test_dump_yaml_round_trips_hostile_text() -> None:
    data = {"name": "x; rm -rf / && `reboot`\nsecond line", "labels": {"k": "Zürich — 東京 🚀"},
            "quote": "it's \"quoted\"", "colon": "a: b", "start": "22:00", "no": "no"}
    assert parse_yaml(dump_yaml(data), "f").data == data
