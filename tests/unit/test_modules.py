"""The house stays walkable (issue 26): no import loops between our modules, found by
`python -m devtools.modules` (which any reader can run)."""

from __future__ import annotations

from devtools.modules import import_graph, loops, modules


def test_the_loop_finder_finds_a_loop_through_three_modules_and_nothing_in_a_chain():
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert loops({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_two_of_our_modules_import_each_other_even_inside_functions_or_for_type_checking():
    assert loops(import_graph(modules(), eager_only=False)) == []


def test_an_import_inside_a_function_or_a_type_checking_block_counts_as_knowing_the_module(tmp_path):
    (tmp_path / "payments").mkdir()
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "function_app.py").write_text("")
    (tmp_path / "payments" / "__init__.py").write_text("")
    (tmp_path / "payments" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    )
    (tmp_path / "payments" / "b.py").write_text("def f():\n    from .a import A\n")
    known = modules(tmp_path)
    lazy, eager = import_graph(known, eager_only=False), import_graph(known, eager_only=True)
    assert lazy["payments.a"] == {"payments.b"} and lazy["payments.b"] == {"payments.a"}
    assert eager["payments.a"] == set() and eager["payments.b"] == set()
