"""The manifest's YAML reader (io.safeyaml): plain data in spec/FORMAT.md §2.1's two forms read
exactly (where PyYAML's safe loader reads them alike, the same), everything else refused with
YAMLRefused saying what and where; and safeyaml is the only place that parses YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import documents

import modelpack
from modelpack.io import jsonform, safeyaml, yamlblock
from modelpack.io.safeyaml import MAX_DEPTH, YAML_NODE_COST, YAMLRefused, YAMLTooLarge, load

# -- valid documents --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1", {"a": 1}),
        ("a: +12", {"a": 12}),
        ("a: -0", {"a": 0}),
        ("a: 1.5", {"a": 1.5}),
        ("a: .inf", {"a": float("inf")}),
        ("a: 1e5", {"a": "1e5"}),              # no point: text to a YAML 1.1 reader
        ("a: 0o17", {"a": "0o17"}),            # YAML 1.2 octal: text in 1.1
        ("a: true", {"a": True}),
        ("a: False", {"a": False}),
        ("a: ~", {"a": None}),
        ("a:", {"a": None}),
        ("a: '2024-01-01'", {"a": "2024-01-01"}),  # quoted: always text
        ('a: "yes"', {"a": "yes"}),
        ("a: |\n  two\n  lines\n", {"a": "two\nlines\n"}),
        ("- 1\n- [a, {b: c}]\n", [1, ["a", {"b": "c"}]]),
    ],
)
def test_plain_scalars_and_collections_read_as_pyyaml_reads_them(text, expected):
    assert load(text, max_nodes=100) == expected == yaml.safe_load(text)
    assert load(text.encode(), max_nodes=100) == expected  # UTF-8 bytes read the same


def test_an_empty_document_is_none():
    assert load("", max_nodes=1) is None


@pytest.mark.parametrize("inside", [2**63 - 1, -(2**63)])
def test_integers_are_int64_exactly(inside):
    assert load(f"a: {inside}", max_nodes=10 * YAML_NODE_COST) == {"a": inside}
    outside = inside + (1 if inside > 0 else -1)
    with pytest.raises(YAMLRefused, match=rf"^the integer {outside} is outside \[-2\*\*63, 2\*\*63\) "
                       r"\(at line 1, column 4\)$"):
        load(f"a: {outside}", max_nodes=10 * YAML_NODE_COST)


def test_number_length_bound_is_exact():
    longest = "1." + "0" * 398  # a float of 400 characters: read
    assert load(f"a: {longest}", max_nodes=10 * YAML_NODE_COST) == {"a": 1.0}
    with pytest.raises(YAMLRefused, match=r"^plain scalar '1\.0+' is an over-long number \(at line 1, column 4\)$"):
        load(f"a: {longest}0", max_nodes=10 * YAML_NODE_COST)


text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)


@settings(max_examples=100, deadline=None)
@given(documents(text, allow_infinity=True))
def test_block_yaml_reads_the_same_as_pyyaml(document):
    dumped = yaml.safe_dump(document, default_flow_style=False, allow_unicode=True)
    assert load(dumped, max_nodes=10**6) == document
    assert load(dumped.encode(), max_nodes=10**6) == document


# -- bounds -----------------------------------------------------------------------------------


def test_depth_limit_is_exact_in_both_forms():
    assert load("[" * MAX_DEPTH + "]" * MAX_DEPTH, max_nodes=1000) is not None
    with pytest.raises(YAMLRefused, match=rf"^nests deeper than {MAX_DEPTH} levels \(at line 1, column {MAX_DEPTH + 1}\)$"):
        load("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), max_nodes=1000)
    deepest_json = '{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert load(deepest_json, max_nodes=1000) == json.loads(deepest_json)
    with pytest.raises(YAMLRefused, match=rf"^nests deeper than {MAX_DEPTH} levels$"):
        load('{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", max_nodes=1000)


@pytest.mark.parametrize(
    ("text", "nodes", "message"),
    [
        ("[1, 2, 3]", 4, "has more than 3 YAML nodes"),           # a sequence and three scalars
        ("a: [1, 2]", 5, "has more than 4 YAML nodes"),           # keys are nodes too
        ('{"a": [1, 2]}', 5, "has more than 4 nodes"),            # and in the JSON form
    ],
)
def test_node_limit_is_exact(text, nodes, message):
    """A block-form node costs YAML_NODE_COST of the limit (its parse is that much slower)."""
    cost = 1 if text.startswith("{") else YAML_NODE_COST
    assert load(text, max_nodes=nodes * cost) is not None
    with pytest.raises(YAMLTooLarge, match=f"^{re.escape(message)}$"):
        load(text, max_nodes=nodes * cost - 1)


def test_too_large_is_a_refusal_is_a_value_error():
    assert issubclass(YAMLTooLarge, YAMLRefused) and issubclass(YAMLRefused, ValueError)


# -- refusals (the hostile suite sends tags, aliases, duplicate keys, second documents, deep
# nesting and number bombs through load; these are the reader's other refusals) -------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1: a", r"mapping keys must be strings, found int \(at line 1, column 1\)"),
        ("~: a", r"mapping keys must be strings, found NoneType \(at line 1, column 1\)"),
        ("? [a]\n: b", r"mapping keys must be strings, found list"),
        ("a: &x 1", r"YAML anchors and aliases are not allowed in a manifest \(at line 1, column 4\)"),
        ("a: 2024-01-01", r"plain scalar '2024-01-01' resolves to 'tag:yaml\.org,2002:timestamp', which a "
                          r"manifest may not hold; quote it \(at line 1, column 4\)"),
        ("a: =", r"plain scalar '=' resolves to 'tag:yaml\.org,2002:value'"),
        ("<<: {a: 1}", r"plain scalar '<<' resolves to 'tag:yaml\.org,2002:merge'"),
        ("a: [", r"^while parsing a flow node"),  # PyYAML's words (libyaml and Python parsers agree here)
    ],
    ids=["int-key", "null-key", "list-key", "lone-anchor", "timestamp", "value", "merge", "syntax"],
)
def test_refusals_say_what_and_where(text, message):
    with pytest.raises(YAMLRefused, match=message):
        load(text, max_nodes=100)


# -- spec/FORMAT.md §2.1: the JSON form's restrictions and the block form's table -------------

@pytest.mark.parametrize("text, reason", [
    ('{"a": 1e5}', "not in the JSON form"),            # YAML 1.1 reads this exponent form as text
    ('{"a": 1.5e5}', "not in the JSON form"),
    ('{"a": "\\ud83d\\ude00"}', "surrogate escape"),    # JSON pairs them, YAML 1.1 readers do not
    ('{"a": "a\u2028b"}', "U\\+2028"),                # a line break to YAML
    ('{"a": 1,}', "not valid JSON"),                   # valid YAML flow, not JSON
    ("{'a': 1}", "not valid JSON"),
    ('{"a": NaN}', "NaN is not JSON"),
    ('{"a": 9223372036854775808}', r"outside \[-2\*\*63"),
])
def test_json_form_that_breaks_its_restrictions_is_refused_not_read_as_yaml(text, reason):
    """FORMAT.md §2.1: a text starting with '{' is the JSON form, never retried as YAML."""
    with pytest.raises(safeyaml.YAMLRefused, match=reason):
        safeyaml.load(text, max_nodes=100)


@pytest.mark.parametrize("text, value", [
    ("a: 1e5", "1e5"), ("a: -.5", "-.5"), ("a: y", "y"), ("a: 0o17", "0o17"), ("a: 08", "08"),
    ("a: +3", 3), ("a: 5.e-1", 0.5), ("a: .5", 0.5), ("a: -.inf", float("-inf")), ("a: ~", None),
    ("a: TRUE", True), ("a: 'on'", "on"),
])
def test_block_form_plain_scalars_follow_the_table(text, value):
    assert safeyaml.load(text, max_nodes=100) == {"a": value}


@pytest.mark.parametrize("plain", ["on", "Off", "yes", "NO", "0x1F", "017", "0b101", "1_000", "1_0.5", "1:30",
                                   "1:30.5", "2001-12-14", "<<", "="])
def test_block_form_yaml_1_1_forms_outside_the_table_are_refused(plain):
    with pytest.raises(safeyaml.YAMLRefused):
        safeyaml.load(f"a: {plain}", max_nodes=100)


def test_json_duplicate_keys_are_refused_like_yaml():
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate"):
        safeyaml.load('{"a": 1, "a": 2}', max_nodes=100)


_YAML_WORDS = ["YES", "NO", "TRUE", "FALSE", "ON", "OFF", "NULL"]
# Plain scalars near the fast paths' edges: numbers, YAML 1.1's boolean and null words, and
# text that starts like them.
plain_scalars = st.one_of(
    st.from_regex(r"[-+]?[0-9]{1,5}\.[0-9]{0,4}([eE][-+]?[0-9]{1,4})?", fullmatch=True),
    st.from_regex(r"[-+]?[0-9_]{1,6}(\.[0-9_]{0,3})?", fullmatch=True),
    st.sampled_from([*(w.lower() for w in _YAML_WORDS), *(w.title() for w in _YAML_WORDS), *_YAML_WORDS, "~",
                     "y", "n", "nul", "yes!", "offf", "tRUE", ".5", "1.", "-.inf", ".NaN", "0x1F", "0o17"]),
    st.from_regex(r"[0-9nNyYtTfFoO.~+-][A-Za-z0-9_.+-]{0,6}", fullmatch=True),
)


def _read_scalar(text: str) -> str:
    try:
        return repr(safeyaml.load(text, max_nodes=100)["a"])
    except safeyaml.YAMLRefused as exc:
        return f"refused: {exc}"


@settings(max_examples=500, deadline=None)
@given(plain_scalars)
def test_scalar_fast_paths_read_as_the_table_does(scalar):
    """safeyaml's shortcuts for decimal floats, booleans and null give what the full path
    (PyYAML's resolver, then spec §2.1's table) gives: the same value, or the same refusal."""
    import re

    text = f"a: [{scalar}]\n"
    fast = _read_scalar(text)
    saved = yamlblock._DECIMAL_FLOAT, yamlblock._WORDS
    yamlblock._DECIMAL_FLOAT, yamlblock._WORDS = re.compile(r"(?!)"), {}
    try:
        slow = _read_scalar(text)
    finally:
        yamlblock._DECIMAL_FLOAT, yamlblock._WORDS = saved
    assert fast == slow


def test_manifest_reader_is_the_only_manifest_reader():
    """Guard against a second, unchecked YAML path creeping in: only safeyaml (through
    yamlblock, for the block form) parses YAML."""
    package = Path(modelpack.__file__).parent
    loaders = re.compile(r"(?<![\w.])yaml\.(safe_load|load|full_load|unsafe_load|compose|parse)\b|CSafeLoader\(")
    offenders = [
        f"{path.name}:{number}"
        for path in package.rglob("*.py") if path.name not in ("safeyaml.py", "yamlblock.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if loaders.search(line)
    ]
    assert offenders == []


def _many(entries: list[str]) -> str:
    """A JSON-form text with enough mappings that duplicate keys are found by counting."""
    return "{\n" + ",\n".join(entries) + "\n}"


def test_many_mappings_duplicate_keys_are_counted_and_named():
    entries = [f'"t{i}": {{"dtype": "f:4", "shape": [{i}]}}' for i in range(1500)]
    document = safeyaml.load(_many(entries), max_nodes=10**6)
    assert len(document) == 1500 and document["t7"] == {"dtype": "f:4", "shape": [7]}
    entries[700] = '"t700": {"dtype": "f4", "dtype": "f8", "shape": [1]}'
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate key 'dtype'"):
        safeyaml.load(_many(entries), max_nodes=10**6)
    entries[700] = '"t699": {"dtype": "f4", "shape": [1]}'  # a duplicate at the top level
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate key 't699'"):
        safeyaml.load(_many(entries), max_nodes=10**6)


def test_many_mappings_depth_and_node_limits_still_hold():
    deep = '"deep": ' + "[" * 200 + "]" * 200
    entries = [f'"t{i}": {{"a": [1]}}' for i in range(1500)]
    with pytest.raises(safeyaml.YAMLRefused, match="nests deeper than 160"):
        safeyaml.load(_many([*entries, deep]), max_nodes=10**6)
    with pytest.raises(safeyaml.YAMLTooLarge):
        safeyaml.load(_many(entries), max_nodes=5000)


@pytest.mark.parametrize("outside", [str(2**63), str(-(2**63) - 1), "1" + "0" * 400, "-1" + "0" * 5000])
def test_many_mappings_integers_are_still_int64_and_bounded(outside):
    """With many mappings, integers are parsed without a call each and checked per level
    (``_walk``); a refusal is still worded as for one integer."""
    entries = [f'"t{i}": {{"shape": [{i}, {2**63 - 1}, {-(2**63)}]}}' for i in range(1500)]
    assert safeyaml.load(_many(entries), max_nodes=10**6)["t9"] == {"shape": [9, 2**63 - 1, -(2**63)]}
    entries[900] = f'"t900": {{"shape": [[1, {outside}]]}}'
    message = "is outside" if len(outside) <= 400 else f"a number of {len(outside)} characters"
    with pytest.raises(safeyaml.YAMLRefused, match=message):
        safeyaml.load(_many(entries), max_nodes=10**6)


def _table(count: int = 1500) -> list[str]:
    """Entries of one width, as a tensor index holds them, with no colon inside a string."""
    return [f'"t{i}": {{"dtype": "float32", "shape": [{i}, 3], "sha256": "{i:064x}"}}' for i in range(count)]


def test_many_mappings_without_colons_in_strings_skip_the_quote_pass(monkeypatch):
    """When the text's colons equal the keys parsed, no duplicate can have been lost, and the
    colons outside strings are never counted; a duplicate still is refused and named."""
    def counted(text):
        raise AssertionError("the colons outside strings were counted")

    monkeypatch.setattr(jsonform, "_colons_outside_strings", counted)
    entries = _table()
    assert safeyaml.load(_many(entries), max_nodes=10**6)["t5"]["shape"] == [5, 3]
    monkeypatch.undo()
    entries[800] = '"t800": {"dtype": "float32", "shape": [1], "shape": [2]}'
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate key 'shape'"):
        safeyaml.load(_many(entries), max_nodes=10**6)
    entries[800] = '"t10": {"dtype": "float32", "shape": [1]}'
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate key 't10'"):
        safeyaml.load(_many(entries), max_nodes=10**6)


@pytest.mark.parametrize("colons", ['"meta": "12:00"', '"meta": ":"', '"a:b": 1'])
def test_many_mappings_with_colons_in_strings_count_outside_strings(colons):
    """A colon inside a string leaves the text's colons above the keys: the exact count
    decides, accepting the document and still refusing a duplicate that the colon hides."""
    entries = [*_table(), colons]
    assert len(safeyaml.load(_many(entries), max_nodes=10**6)) == 1501
    entries[3] = '"t4": {"dtype": "float32", "shape": [1]}'  # one key lost, one colon extra
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate key 't4'"):
        safeyaml.load(_many(entries), max_nodes=10**6)


def test_walk_table_columns_of_mixed_types_are_still_checked():
    """A table's column of one type is classified at once; a column that mixes types (a key
    order that differs, a nested value) is walked value by value, so a deep nest or an
    out-of-range integer anywhere in it is still found."""
    entries = _table()
    entries[5] = '"t5": {"shape": [5, 3], "dtype": "float32", "sha256": "00"}'  # another order
    assert safeyaml.load(_many(entries), max_nodes=10**6)["t5"]["dtype"] == "float32"
    entries[6] = f'"t6": {{"dtype": [[{2**63}]], "shape": [1], "sha256": "00"}}'
    with pytest.raises(safeyaml.YAMLRefused, match="is outside"):
        safeyaml.load(_many(entries), max_nodes=10**6)
    entries[6] = '"t6": {"dtype": ' + "[" * 200 + "]" * 200 + ', "shape": [1], "sha256": "00"}'
    with pytest.raises(safeyaml.YAMLRefused, match="nests deeper than 160"):
        safeyaml.load(_many(entries), max_nodes=10**6)
    entries[6] = f'"t6": {{"dtype": "float32", "shape": [1, {-(2**63) - 1}], "sha256": "00"}}'
    with pytest.raises(safeyaml.YAMLRefused, match="is outside"):
        safeyaml.load(_many(entries), max_nodes=10**6)


def test_walk_matches_a_plain_recursive_count():
    """``_walk``'s keys, integer range and refusals against a recursive reference, on
    tables of one width, mixed widths and mixed types."""
    def reference(value, depth=1):
        if type(value) is dict:
            parts = [reference(v, depth + 1) for v in value.values()]
            return (len(value) + sum(p[0] for p in parts), min([0, *(p[1] for p in parts)]),
                    max([0, *(p[2] for p in parts)]))
        if type(value) is list:
            parts = [reference(v, depth + 1) for v in value]
            return sum(p[0] for p in parts), min([0, *(p[1] for p in parts)]), max([0, *(p[2] for p in parts)])
        return (0, value, value) if type(value) is int else (0, 0, 0)

    def floats(value):
        if type(value) is dict:
            return any(map(floats, value.values()))
        return any(map(floats, value)) if type(value) is list else type(value) is float

    documents = [
        {f"t{i}": {"a": "x", "b": [i, -i], "c": None} for i in range(50)},
        {f"t{i}": {"a": i, "b": {"c": [i * 7, {"d": -3 * i}]}} if i % 3 else {"z": [True, 1.5, i]} for i in range(50)},
        [{"a": [1, [2, [3]]], "b": 4}, {"c": -9}, [], {}, 7, "s"],
        {"w": {f"t{i}": {"a": 1, "b": [2, 0.5 if i == 7 else 3]} for i in range(20)}},
        {"w": {f"t{i}": {"s": [2**62, i], "d": "f"} for i in range(20)}, "m": {}},
    ]
    for document in documents:
        assert jsonform._walk(document, 10**6) == (*reference(document), floats(document))


# Texts json accepts or refuses, each put into a manifest of many mappings (parsed by
# pydantic's parser first): the outcome must be what json and its hooks alone give.
_EDGES = [
    '1.5', '-0.25', '1.5e+3', '1.5E-3', '1e5', '1E+5', '1.5e3', '2.', '.5', '-0', '-0.0', '01', '+1',
    'NaN', 'Infinity', '-Infinity', '1e999', '9' * 30, '9' * 5000, str(2**63), str(-(2**63)),
    '"\x7f"', 'true', 'True', 'null', '[1,]', '[1 2]', '{"a": 1,}', '"a\tb"', '"é"', '"\u00e9"',
    '[' * 170 + ']' * 170, '[' * 150 + ']' * 150,
]


@pytest.mark.parametrize("value", _EDGES, ids=lambda value: value[:20])
def test_many_mappings_parsed_quickly_agree_with_json_alone(monkeypatch, value):
    text = _many([*_table(), f'"edge": {value}'])
    def outcome():
        try:
            return safeyaml.load(text, max_nodes=10**6)
        except safeyaml.YAMLRefused as exc:
            return type(exc), str(exc)
    quick = outcome()
    monkeypatch.setattr(jsonform, "_parse_quickly", lambda text: None)
    assert quick == outcome()


def test_many_mappings_are_parsed_quickly_unless_a_float_needs_its_form_checked(monkeypatch):
    """The quick parse is kept when the document holds no float; a float sends it through
    json again, whose hook checks the form (and refuses one outside the JSON form)."""
    calls = []
    original = jsonform._parse_json
    monkeypatch.setattr(jsonform, "_parse_json", lambda text, hooked: calls.append(hooked) or original(text, hooked))
    safeyaml.load(_many(_table()), max_nodes=10**6)
    assert calls == []
    assert safeyaml.load(_many([*_table(), '"f": [0.5]']), max_nodes=10**6)["f"] == [0.5]
    assert calls == [False]
    calls.clear()
    with pytest.raises(safeyaml.YAMLRefused, match="not in the JSON form"):
        safeyaml.load(_many([*_table(), '"f": {"g": [1e5]}']), max_nodes=10**6)
    assert calls == [False]  # refused by that parse's hook, not parsed a third time


# JSON's numbers with a fraction or an exponent: the ones json hands to ``parse_float``.
_JSON_FLOAT_TOKENS = st.from_regex(r"\A-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,4}([eE][-+]?[0-9]{1,3})?|[eE][-+]?[0-9]{1,3})\Z")


@settings(max_examples=300, deadline=None)
@given(token=_JSON_FLOAT_TOKENS)
def test_a_float_is_accepted_exactly_when_it_has_the_json_forms_point_and_signed_exponent(token):
    """The hook looks at the pattern only where there is an exponent; the pattern decides."""
    if jsonform._JSON_FLOAT.match(token):
        assert jsonform._json_float(token) == float(token)
    else:
        with pytest.raises(YAMLRefused, match="not in the JSON form"):
            jsonform._json_float(token)


def test_a_proven_part_is_counted_not_walked():
    """``prove`` is asked only about a large document; its part stands in the result, its
    nodes count toward the limit (the message names the caller's limit), and its keys toward
    the duplicate count (a wrong count would leave the text's keys unmatched)."""
    asked = []

    def prove(document):
        asked.append(document)
        part = document["w"]
        keys = len(part) + sum(map(len, part.values()))
        return safeyaml.Proof("w", "checked", keys=keys, nodes=2 * keys + len(part))  # a list of one each

    table = ",\n".join(f'"t{i}": {{"a": [{i}]}}' for i in range(1500))
    text = '{"w": {' + table + '}, "m": {"k": "v"}}'
    nodes = 1 + 2 * 2 + 2 * 1 + 2 * (1500 + 1500) + 1500
    document = safeyaml.load(text, max_nodes=nodes, prove=prove)
    assert document == {"w": "checked", "m": {"k": "v"}} and len(asked) == 1
    with pytest.raises(safeyaml.YAMLTooLarge, match=f"more than {nodes - 1} nodes"):
        safeyaml.load(text, max_nodes=nodes - 1, prove=prove)
    with pytest.raises(safeyaml.YAMLRefused, match="duplicate keys"):
        safeyaml.load(text, max_nodes=nodes, prove=lambda d: prove(d)._replace(keys=prove(d).keys - 1))
    asked.clear()
    assert safeyaml.load('{"w": {"t": {"a": [1]}}}', max_nodes=100, prove=prove) == {"w": {"t": {"a": [1]}}}
    assert asked == []  # a small document is checked as it is parsed


@pytest.mark.parametrize("text", ['\ufeff{"a": 1}', '{"a": "\ufeff"}', '{\ufeff"a": 1}'])
def test_a_byte_order_mark_is_refused_before_json_decodes(text):
    """jsonform decodes with prebuilt decoders, which skip ``json.loads``'s check of a leading
    byte-order mark: U+FEFF is refused wherever it stands, before decoding."""
    with pytest.raises(safeyaml.YAMLRefused, match="U\\+FEFF"):
        safeyaml.load(text, max_nodes=100)
