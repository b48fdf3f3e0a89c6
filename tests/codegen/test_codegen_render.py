"""The Jinja2 environment and filters of ``stepwire_codegen.render``."""

from __future__ import annotations

import ast
import re
from types import SimpleNamespace

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwire_codegen.errors import ContractError
from stepwire_codegen.model import Encoding, Kind
from stepwire_codegen.render import environment

ENV = environment()
pystr = ENV.filters["pystr"]
docstring = ENV.filters["docstring"]
oneline = ENV.filters["oneline"]

SAMPLES = [
    "",
    "abc",
    "it's",
    'say "hi"',
    "both ' and \"",
    "back\\slash",
    "new\nline\ttab\r",
    "nul \x00 and bell \x07",
    "é 测试 🚀",
    "\u2028\u2029",
    "%s {{ jinja }} {% raw %}",
    '"""triple"""',
    "'''",
]


def test_filters_registered() -> None:
    assert {"pystr", "docstring", "oneline"} <= set(ENV.filters)


@pytest.mark.parametrize("value", SAMPLES)
def test_pystr_is_a_literal_of_the_value(value: str) -> None:
    literal = pystr(value)
    assert ast.literal_eval(literal) == value
    assert "\n" not in literal


@pytest.mark.parametrize(
    ("value", "literal"),
    [("abc", '"abc"'), ("it's", '"it\'s"'), ('a"b', "'a\"b'"), ("", '""'), ("a\\b", '"a\\\\b"')],
)
def test_pystr_prefers_double_quotes(value: str, literal: str) -> None:
    assert pystr(value) == literal


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_pystr_round_trips_any_text(value: str) -> None:
    literal = pystr(value)
    assert ast.literal_eval(literal) == value
    if '"' not in value:
        assert literal.startswith('"')


def test_docstring_escapes() -> None:
    assert docstring('  a """b""" c\\d  \n') == 'a \\"\\"\\"b\\"\\"\\" c\\\\d'
    assert docstring("Line one.\n\nLine two.") == "Line one.\n\nLine two."


@pytest.mark.parametrize(
    "value", [v for v in SAMPLES if v.strip() and not v.strip().endswith('"') and "\x00" not in v]
)
def test_docstring_inside_triple_quotes(value: str) -> None:
    assert ast.literal_eval('"""' + docstring(value) + '\n"""') == value.strip() + "\n"


def test_oneline() -> None:
    assert oneline("  A  value,\n  on   two\tlines.  ") == "A value, on two lines."
    assert oneline('quote """ and \\') == 'quote \\"\\"\\" and \\\\'
    assert "\n" not in oneline("a\n\nb\r\nc")


@pytest.mark.parametrize("value", ['Ends with "quote"', 'x"'])
def test_text_ending_with_quote_inside_docstring(value: str) -> None:
    assert ast.literal_eval('"""' + oneline(value) + '"""') == value


def test_environment_is_strict_and_keeps_bytes() -> None:
    env = environment()
    assert env.from_string("a\n").render() == "a\n"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    # trim_blocks/lstrip_blocks: block tags leave no blank lines or indentation.
    template = env.from_string("x\n  {% if true %}\ny\n  {% endif %}\nz\n")
    assert template.render() == "x\ny\nz\n"
    assert env.from_string("{{ '<&>' }}").render() == "<&>"  # no HTML escaping


def test_templates_load() -> None:
    names = set(ENV.list_templates())
    assert {"codec.py.j2", "__init__.py.j2", "_header.j2"} <= names
    assert {member.template for member in (*Encoding, *Kind)} <= names


def _macros(name: str) -> set[str]:
    assert ENV.loader is not None
    source = ENV.loader.get_source(ENV, name)[0]
    return {node.name for node in ENV.parse(source).find_all(jinja2.nodes.Macro)}


@pytest.mark.parametrize(
    ("family", "macros"),
    [(Encoding, {"encode", "decode"}), (Kind, {"is_set", "python_value", "json_out", "json_in"})],
)
def test_one_macro_file_per_value_with_the_same_macros(
    family: type[Encoding] | type[Kind], macros: set[str]
) -> None:
    for member in family:
        assert _macros(member.template) == macros, member


def test_no_template_branches_on_a_kind_or_an_encoding() -> None:
    # Dispatch goes through the macro file the model names, never an if/elif.
    branch = re.compile(r"\{%-?\s*(?:el)?if\b[^%]*\b(?:kind|encoding)\b")
    for name in ENV.list_templates():
        assert ENV.loader is not None
        source = ENV.loader.get_source(ENV, name)[0]
        assert not branch.search(source), name
        assert ".value ==" not in source, name


@pytest.mark.parametrize("macro", ["json_out", "json_in"])
def test_uint32_has_no_json_form(macro: str) -> None:
    field = SimpleNamespace(name="count", flag="count")
    template = ENV.from_string(
        f'{{% import "{Kind.UINT32.template}" as kind %}}{{{{ kind.{macro}(f) }}}}'
    )
    with pytest.raises(ContractError, match="count: a uint32 field has no JSON form"):
        template.render(f=field)
