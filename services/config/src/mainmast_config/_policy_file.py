"""The access policy file: YAML, validated strictly, with the line of every mistake.

The file (its path comes from the settings) holds `rules` and, optionally, `version: 1`::

    version: 1
    rules:
      - description: the payments API reads its own secrets   # optional
        subjects: [tenants/acme/serviceAccounts/payments-api]  # subjects and/or roles
        roles: []
        tenants: []                                           # optional: only these tenants
        secrets: ["payments/*"]                               # secrets and/or settings
        settings: ["payments.*"]

Every key is checked: an unknown key, a missing grant, a pattern with characters a name
cannot have, a number where a list of text belongs and a key written twice are errors
that name the line and the field. A pattern that starts with `*` must be quoted, since
YAML reads an unquoted `*x` as an alias. `rules: []` grants nothing to anybody.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import pydantic
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._policy import AccessPolicy, AccessRule, Patterns, pattern_problem

_FieldPath = tuple[str | int, ...]

_ALIAS_HINT: Final = " (a pattern that starts with '*' must be quoted: \"**\")"


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One mistake in a policy file."""

    line: int | None
    """The line (from 1) it is on, when known."""
    field: str
    """Where in the document, e.g. `rules[1].secrets[0]`."""
    description: str
    """What is wrong."""

    def __str__(self) -> str:
        """`line 7, rules[1].secrets[0]: ...`."""
        where = self.field if self.line is None else f"line {self.line}, {self.field}"
        return f"{where}: {self.description}"


class PolicyFileError(ValueError):
    """A policy file that cannot be used; `problems` lists each mistake with its line."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        """The file."""
        self.problems = tuple(problems)
        """The mistakes found."""
        listed = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"The access policy file {source} is invalid:\n{listed}")


def _checked_pattern(pattern: str) -> str:
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    return pattern


_Pattern = Annotated[str, pydantic.AfterValidator(_checked_pattern)]
_Strict = pydantic.ConfigDict(extra="forbid", frozen=True, strict=True)


class _RuleEntry(pydantic.BaseModel):
    model_config = _Strict

    description: str = ""
    subjects: list[_Pattern] = []
    roles: list[_Pattern] = []
    tenants: list[_Pattern] = []
    secrets: list[_Pattern] = []
    settings: list[_Pattern] = []

    @pydantic.model_validator(mode="after")
    def _grants_something_to_someone(self) -> _RuleEntry:
        if not (self.subjects or self.roles):
            raise ValueError("a rule names the subjects or the roles it applies to")
        if not (self.secrets or self.settings):
            raise ValueError("a rule grants some secrets or settings")
        return self


class _PolicyDocument(pydantic.BaseModel):
    model_config = _Strict

    version: Literal[1] = 1
    rules: list[_RuleEntry]


def load_policy_file(path: Path) -> AccessPolicy:
    """The policy in the file at `path`; PolicyFileError when it cannot be read or used."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = PolicyProblem(None, "(file)", f"cannot be read: {exc}")
        raise PolicyFileError(str(path), [problem]) from exc
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "access policy") -> AccessPolicy:
    """The policy a YAML text describes; PolicyFileError naming each mistake's line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        description = f"not valid YAML: {exc.problem or exc.context}"
        if "alias" in description or "'*'" in description:
            description += _ALIAS_HINT
        raise PolicyFileError(source, [PolicyProblem(line, "(document)", description)]) from None
    except yaml.YAMLError as exc:
        raise PolicyFileError(
            source, [PolicyProblem(None, "(document)", f"not valid YAML: {exc}")]
        ) from None
    if root is None:
        problem = PolicyProblem(1, "(document)", "the file is empty; `rules: []` grants nothing")
        raise PolicyFileError(source, [problem])
    lines: dict[_FieldPath, int] = {}
    problems: list[PolicyProblem] = []
    document = _plain(root, (), lines, problems)
    if problems:
        raise PolicyFileError(source, problems)
    try:
        parsed = _PolicyDocument.model_validate(document)
    except pydantic.ValidationError as exc:
        raise PolicyFileError(
            source,
            [
                PolicyProblem(
                    _line_of(tuple(error["loc"]), lines),
                    _field_name(tuple(error["loc"])),
                    error["msg"].removeprefix("Value error, "),
                )
                for error in exc.errors(include_url=False)
            ],
        ) from None
    return AccessPolicy(
        [
            AccessRule(
                subjects=Patterns(tuple(entry.subjects)),
                roles=Patterns(tuple(entry.roles)),
                tenants=Patterns(tuple(entry.tenants)),
                secrets=Patterns(tuple(entry.secrets)),
                settings=Patterns(tuple(entry.settings)),
                description=entry.description,
            )
            for entry in parsed.rules
        ],
        source=source,
    )


def _plain(
    node: Node, path: _FieldPath, lines: dict[_FieldPath, int], problems: list[PolicyProblem]
) -> Any:
    """The node as plain Python values, recording the line of every field on the way."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = (
                SafeConstructor().construct_object(key_node)
                if isinstance(key_node, ScalarNode)
                else None
            )
            if not isinstance(key, str):
                problems.append(
                    PolicyProblem(key_node.start_mark.line + 1, _field_name(path), "keys are text")
                )
                continue
            if key in mapping:
                problems.append(
                    PolicyProblem(
                        key_node.start_mark.line + 1,
                        _field_name((*path, key)),
                        "written twice; write each key once",
                    )
                )
                continue
            mapping[key] = _plain(value_node, (*path, key), lines, problems)
        return mapping
    if isinstance(node, SequenceNode):
        return [
            _plain(item, (*path, index), lines, problems) for index, item in enumerate(node.value)
        ]
    return SafeConstructor().construct_object(node)


def _line_of(location: _FieldPath, lines: dict[_FieldPath, int]) -> int | None:
    # A missing field has no line of its own: the closest enclosing one that has.
    for end in range(len(location), -1, -1):
        line = lines.get(location[:end])
        if line is not None:
            return line
    return None


def _field_name(location: _FieldPath) -> str:
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "(document)"
