"""Secret names: what is valid, and how environment variables and Key Vault spell them."""

from __future__ import annotations

import pytest

from mainmast.errors import ValidationError
from mainmast_config._names import (
    MAX_NAME_LENGTH,
    check_name,
    environment_variable,
    key_vault_name,
    name_of_environment_variable,
    name_of_key_vault_name,
    name_problem,
)


@pytest.mark.parametrize(
    "name", ["database-password", "payments/stripe-key", "checkout.max_items", "A1", "x" * 256]
)
def test_valid_names_pass(name: str) -> None:
    assert name_problem(name) is None
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * (MAX_NAME_LENGTH + 1),
        "has space",
        "semi;colon",
        "../etc/passwd",
        "a//b",
        "/a",
        "a/",
        ".hidden",
        "a/..data/b",
        "é",
    ],
)
def test_invalid_names_fail_with_invalid_name(name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(ValidationError) as caught:
        check_name(name, field="names[0]")
    assert caught.value.reason == "INVALID_NAME"
    assert caught.value.field_violations[0].field == "names[0]"


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("database-password", "DATABASE_PASSWORD"),
        ("payments/stripe-key", "PAYMENTS__STRIPE_KEY"),
        ("checkout.max_items", "CHECKOUT_MAX_ITEMS"),
    ],
)
def test_names_map_to_environment_variables_and_back(name: str, variable: str) -> None:
    assert environment_variable(name) == variable
    assert environment_variable(name, "APP_") == f"APP_{variable}"
    assert name_of_environment_variable(f"APP_{variable}", "APP_") == (
        name.replace("_", "-").replace(".", "-")
    )


@pytest.mark.parametrize(
    ("variable", "prefix"), [("path", ""), ("OTHER_X", "APP_"), ("APP_", "APP_"), ("__X", "")]
)
def test_variables_that_hold_no_name_map_to_none(variable: str, prefix: str) -> None:
    assert name_of_environment_variable(variable, prefix) is None


def test_names_map_to_key_vault_names_and_back() -> None:
    assert key_vault_name("payments/stripe-key") == "payments--stripe-key"
    assert key_vault_name("checkout.max_items") == "checkout-max-items"
    assert name_of_key_vault_name("payments--stripe-key") == "payments/stripe-key"
    assert key_vault_name("x" * 128) is None
    assert name_of_key_vault_name("--x") is None
