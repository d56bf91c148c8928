"""The policy file: a valid file becomes rules; every kind of mistake is refused with its line
and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mainmast.runtime import Principal
from mainmast_config._audit import AccessKind
from mainmast_config._policy_file import PolicyFileError, load_policy_file, parse_policy

VALID = """\
version: 1
rules:
  - description: the payments API reads its own secrets
    subjects: [tenants/acme/serviceAccounts/payments-api]
    secrets: ["payments/*"]
    settings: [payments.retries]
  - roles: ["tenants/*/roles/owner"]
    tenants: [tenants/acme]
    secrets: ["**"]
"""


def _problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, source="policy.yaml")
    return [(p.line, p.field, p.description) for p in raised.value.problems]


def test_a_valid_file_becomes_its_rules_in_order(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(VALID)
    policy = load_policy_file(path)
    payments = Principal("tenants/acme", "tenants/acme/serviceAccounts/payments-api")
    owner = Principal("tenants/acme", "tenants/acme/users/olga", ("tenants/acme/roles/owner",))

    assert [rule.description for rule in policy.rules] == [
        "the payments API reads its own secrets",
        "",
    ]
    assert policy.source == str(path)
    assert policy.allows(payments, AccessKind.SECRET, "payments/stripe-key")
    assert policy.allows(payments, AccessKind.SETTING, "payments.retries")
    assert not policy.allows(payments, AccessKind.SECRET, "orders/db-password")
    assert policy.allows(owner, AccessKind.SECRET, "orders/db-password")


def test_an_empty_rule_list_grants_nothing_and_version_is_optional() -> None:
    policy = parse_policy("rules: []\n")

    assert policy.rules == ()
    assert not policy.allows(Principal("t", "s", ("roles/platform-admin",)), AccessKind.SECRET, "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - subjects: [a]\n    secrets: [x]\n    secret: [y]\n",
            (4, "rules[0].secret", "Extra inputs are not permitted"),
        ),
        (
            "rules:\n  - subjects: [a]\n    secrets: [ok, 'bad pattern']\n",
            (3, "rules[0].secrets[1]", "only letters, digits"),
        ),
        (
            "rules:\n  - subjects: [a]\n",
            (2, "rules[0]", "a rule grants some secrets or settings"),
        ),
        (
            "rules:\n  - secrets: [x]\n",
            (2, "rules[0]", "names the subjects or the roles"),
        ),
        (
            "rules:\n  - subjects: tenants/acme/users/mia\n    secrets: [x]\n",
            (2, "rules[0].subjects", "Input should be a valid list"),
        ),
        (
            "rules:\n  - subjects: [42]\n    secrets: [x]\n",
            (2, "rules[0].subjects[0]", "Input should be a valid string"),
        ),
        (
            "rules:\n  - subjects: [a]\n    secrets: [x]\n    secrets: [y]\n",
            (4, "rules[0].secrets", "written twice"),
        ),
        ("version: 2\nrules: []\n", (1, "version", "Input should be 1")),
        ("version: 1\n", (1, "rules", "Field required")),
        ("", (1, "(document)", "the file is empty")),
        ("rules:\n  - subjects: [a\n", (3, "(document)", "not valid YAML")),
        (
            "rules:\n  - subjects: [a]\n    secrets: [**]\n",
            (3, "(document)", "must be quoted"),
        ),
        ("- a\n- b\n", (1, "(document)", "Input should be a valid dictionary")),
    ],
    ids=[
        "unknown-key",
        "bad-pattern",
        "no-grant",
        "no-callers",
        "text-for-a-list",
        "number-for-text",
        "duplicate-key",
        "wrong-version",
        "missing-rules",
        "empty-file",
        "broken-yaml",
        "unquoted-star",
        "not-a-mapping",
    ],
)
def test_every_mistake_is_refused_with_its_line_and_field(
    text: str, expected: tuple[int, str, str]
) -> None:
    problems = _problems(text)
    line, field, description = expected

    assert [(p_line, p_field) for p_line, p_field, _ in problems] == [(line, field)]
    assert description in problems[0][2]


def test_the_error_lists_every_mistake_with_the_file_name() -> None:
    text = (
        "rules:\n  - subjects: ['']\n    secrets: [x]\n  - roles: [a]\n    bogus: 1\n"
        "    secrets: [x]\n  - roles: [b]\n"
    )
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, source="/etc/mainmast/policy.yaml")

    message = str(raised.value)
    assert message.startswith("The access policy file /etc/mainmast/policy.yaml is invalid:")
    assert "line 2, rules[0].subjects[0]: a pattern may not be empty" in message
    assert "line 5, rules[1].bogus: Extra inputs are not permitted" in message
    assert "line 7, rules[2]: a rule grants some secrets or settings" in message


def test_an_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot be read"):
        load_policy_file(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyFileError, match="cannot be read"):
        load_policy_file(binary)
