"""Reading and writing flag definitions: ``flags/<key>.yaml`` files and the JSON API form.

Every problem is reported as a :class:`~rollwave.errors.Problem` with ``file:line`` (YAML) or
a JSON path (API bodies), all at once in one :class:`~rollwave.errors.ValidationFailed`.

Layout of a workspace::

    flags/new-checkout.yaml          one flag; the file name is the flag key
    flags/segments/beta.yaml         one segment; the file name is the segment key
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rollwave.errors import Problem, ValidationFailed
from rollwave.flags.engine import check_flag
from rollwave.flags.model import Flag, FlagSet, Segment
from rollwave.yamlio import YamlDocument, dump_yaml, format_path, load_yaml, parse_yaml

M = TypeVar("M", bound=BaseModel)


_PATH_PREFIX = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\])?(?:\.[\w-]+(?:\[\d+\])?)*) ")
_VARIANTS_NOTE = re.compile(r" \(variants are: [^)]*\)$")


def parse_path(text: str) -> tuple[str | int, ...]:
    """``rules[1].serve`` → ``("rules", 1, "serve")`` (the inverse of ``format_path``)."""
    out: list[str | int] = []
    for part in text.split("."):
        name, _, rest = part.partition("[")
        if name:
            out.append(name)
        for index in re.findall(r"(\d+)\]", "[" + rest if rest else ""):
            out.append(int(index))  # noqa: PERF401
    return tuple(out)


def _pydantic_problems(exc: ValidationError, locate: Any) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field '{loc[-1]}'"
        elif error["type"] == "missing":
            message = f"missing required field '{loc[-1]}'"
        note = _VARIANTS_NOTE.search(message)
        suffix = note.group(0) if note else ""
        for part in _VARIANTS_NOTE.sub("", message).split("; "):
            match = _PATH_PREFIX.match(part)
            where = loc + parse_path(match.group(1)) if (match and "[" in match.group(1)) \
                or (match and match.group(1) in ("fallthrough", "off_variant")) else loc
            problems.append(locate(where, part + suffix))
    return problems


def _condition_problems(data: dict[str, Any], locate: Any) -> list[Problem]:
    """Compile every condition on its own, so bad operands get their exact line."""
    from rollwave.flags.errors import FlagDefinitionError
    from rollwave.flags.model import Condition
    from rollwave.flags.operators import compile_predicate
    rule_lists: list[tuple[tuple[str | int, ...], Any]] = [(("rules",), data.get("rules"))]
    environments = data.get("environments")
    if isinstance(environments, dict):
        rule_lists.extend((("environments", env, "rules"), settings.get("rules"))
                          for env, settings in environments.items()
                          if isinstance(settings, dict))
    problems = []
    for base, rules in rule_lists:
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            when = rule.get("when") if isinstance(rule, dict) else None
            when = [when] if isinstance(when, dict) else when
            for j, raw in enumerate(when if isinstance(when, list) else []):
                try:
                    cond = Condition.model_validate(raw)
                    if cond.attribute is not None:
                        compile_predicate(cond)
                    elif cond.jsonlogic is not None:
                        from rollwave.flags.jsonlogic import compile_condition
                        compile_condition(cond.jsonlogic)
                except ValidationError:
                    continue  # reported by the whole-flag validation
                except FlagDefinitionError as exc:
                    field = "values" if isinstance(raw, dict) and "values" in raw else "value"
                    problems.append(locate((*base, i, "when", j, field), exc.message))
    return problems


def _validate(model: type[M], data: Any, doc: YamlDocument | None,
              extra: dict[str, Any]) -> tuple[M | None, list[Problem]]:
    if not isinstance(data, dict):
        problem = Problem(message=f"expected a mapping of fields, got {type(data).__name__}",
                          file=doc.file if doc else None, line=1 if doc else None,
                          code="flag.invalid")
        return None, [problem]
    data = {**extra, **data}
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _pydantic_problems(exc, _locator(doc))


def _locator(doc: YamlDocument | None) -> Any:
    def locate(path: Sequence[str | int], message: str) -> Problem:
        if doc is not None:
            return doc.problem(path, message, code="flag.invalid",
                               hint="see docs/flags.md for the flag file format")
        return Problem(message=message, path=format_path(path), code="flag.invalid")
    return locate


def parse_flag(data: Any, *, key: str | None = None, doc: YamlDocument | None = None,
               flagset: FlagSet | None = None) -> Flag:
    """Validate a flag from parsed data (YAML or JSON); raise ValidationFailed with all problems.

    ``key`` (the file name or URL key) is used when the data has none and must match
    otherwise. With ``flagset``, unknown segments and prerequisites are reported too.
    """
    problems: list[Problem] = []
    extra: dict[str, Any] = {}
    if data is None:  # an empty file: a flag with every default (a disabled boolean)
        data = {}
    if key is not None and isinstance(data, dict):
        if "key" in data and data["key"] != key:
            message = f"key '{data['key']}' does not match the name '{key}'"
            problems.append(doc.problem(("key",), message, code="flag.invalid") if doc
                            else Problem(message=message, path="key", code="flag.invalid"))
        extra["key"] = key
    flag, found = _validate(Flag, data, doc, extra)
    problems.extend(found)
    conditions = _condition_problems(data, _locator(doc)) if isinstance(data, dict) else []
    problems.extend(conditions)
    if flag is not None:
        for problem in check_flag(flag, flagset):
            if conditions and problem.code == "flag.definition":
                continue
            problems.append(_relocate(problem, doc))
    if problems:
        raise ValidationFailed(problems, what=doc.file if doc else f"flag '{key or '?'}'")
    assert flag is not None
    return flag


def parse_segment(data: Any, *, key: str | None = None,
                  doc: YamlDocument | None = None) -> Segment:
    """Validate a segment; raise ValidationFailed with every problem."""
    extra = {"key": key} if key is not None else {}
    segment, problems = _validate(Segment, data, doc, extra)
    if segment is not None:
        from rollwave.flags.compiler import compile_segment
        from rollwave.flags.errors import FlagDefinitionError
        try:
            compile_segment(segment)
        except FlagDefinitionError as exc:
            problems.append(_relocate(Problem(message=exc.message, path="when",
                                              hint=exc.hint, code=exc.code), doc))
    if problems:
        raise ValidationFailed(problems, what=doc.file if doc else f"segment '{key or '?'}'")
    assert segment is not None
    return segment


def _relocate(problem: Problem, doc: YamlDocument | None) -> Problem:
    if doc is None:
        return problem
    path: tuple[str | int, ...] = ()
    if problem.path and problem.path.startswith("flags."):
        path = ()
    elif problem.path:
        path = (problem.path.split(".")[0],)
    return doc.problem(path, problem.message, hint=problem.hint, code=problem.code)


def load_flag_file(path: Path, display: str | None = None,
                   flagset: FlagSet | None = None) -> Flag:
    """Load ``flags/<key>.yaml``; the key defaults to the file name."""
    doc = load_yaml(path, display)
    return parse_flag(doc.data, key=path.stem, doc=doc, flagset=flagset)


def parse_flag_yaml(text: str, file: str = "<string>", key: str | None = None) -> Flag:
    """Parse one flag from YAML text (for tests and the API's YAML upload)."""
    doc = parse_yaml(text, file)
    return parse_flag(doc.data, key=key, doc=doc)


def load_flags_dir(root: Path) -> FlagSet:
    """Load every flag and segment under ``root/flags``; report all problems together."""
    base = root / "flags"
    problems: list[Problem] = []
    segments: dict[str, Segment] = {}
    flags_data: list[tuple[Path, YamlDocument]] = []
    if not base.is_dir():
        return FlagSet()
    for path in sorted((base / "segments").glob("*.yaml")) if (base / "segments").is_dir() \
            else []:
        display = str(path.relative_to(root))
        try:
            doc = load_yaml(path, display)
            segments[path.stem] = parse_segment(doc.data, key=path.stem, doc=doc)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    for path in sorted(base.glob("*.yaml")):
        try:
            flags_data.append((path, load_yaml(path, str(path.relative_to(root)))))
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    flags: dict[str, Flag] = {}
    parsed: list[tuple[Flag, YamlDocument]] = []
    for path, doc in flags_data:
        try:
            flag = parse_flag(doc.data, key=path.stem, doc=doc)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        flags[flag.key] = flag
        parsed.append((flag, doc))
    flagset = FlagSet(flags=flags, segments=segments)
    for flag, doc in parsed:  # cross-references need the whole set
        for problem in check_flag(flag, flagset):
            if "unknown" in problem.message or "cycle" in problem.message:
                problems.append(_relocate(problem, doc))  # noqa: PERF401
    if problems:
        raise ValidationFailed(problems, what="flags")
    return flagset


def flag_to_data(flag: Flag) -> dict[str, Any]:
    """The JSON form of a flag (defaults left out), as the API returns it."""
    data: dict[str, Any] = flag.model_dump(mode="json", exclude_defaults=True)
    data["key"] = flag.key
    data["type"] = flag.type
    return data


def flag_to_yaml(flag: Flag) -> str:
    """YAML text for ``flags/<key>.yaml``."""
    data = flag_to_data(flag)
    data.pop("key", None)
    return dump_yaml(data)
