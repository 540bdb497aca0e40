"""Recipe validation: one clear message per problem; the shipped recipes load."""

from __future__ import annotations

from pathlib import Path

import pytest

from pakd.pipeline import RecipeError, find_recipe, load_recipe, parse_recipe

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[recipe]
name = "x"
[[stage]]
name = "prune"
epochs = 2
lr = 0.01
[stage.prune]
method = "unstructured"
amount = 0.9
[stage.distill]
teachers = ["teacher"]
alpha = 0.5
[[stage]]
name = "quant"
epochs = 1
lr = 0.001
[stage.quantize]
method = "kmeans"
bits = { linear = 4 }
[stage.distill]
teachers = ["teacher", "previous"]
"""


def test_good_recipe_parses_into_frozen_configs():
    r = parse_recipe(GOOD)
    assert r.name == "x" and len(r.stages) == 2 and r.huffman
    assert r.stages[0].prune.amount == 0.9 and r.stages[0].distill.alpha == 0.5
    assert dict(r.stages[1].quantize.bits) == {"conv": 8, "linear": 4}
    assert r.stages[1].distill.teachers == ("teacher", "previous")


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('method = "unstructured"', 'method = "lottery"', "unknown pruning method 'lottery'"),
        ("amount = 0.9", "amount = 1.5", r"stage 1 \(prune\).prune.amount: 1.5 is not in \[0, 1\)"),
        ("amount = 0.9", 'amount = "lots"', "expected float, got str"),
        ("epochs = 2", "epochs = 0", "epochs: 0 is not >= 1"),
        ("epochs = 2", "", "missing required key 'epochs'"),
        ('method = "kmeans"', 'method = "pq"', "quantize.method: 'pq' is not one of"),
        ("bits = { linear = 4 }", "bits = { linear = 12 }", "bits: expected"),
        ("alpha = 0.5", "alpha = 0.5\ncolour = 3", "unknown key"),
        ('teachers = ["teacher"]', 'teachers = ["previous"]', "'previous' needs an earlier stage"),
        ('name = "x"', 'name = "x"\n[extra]', "unknown section"),
        ("lr = 0.01", "lr = true", "expected float, got a boolean"),
    ],
)
def test_each_mistake_gets_a_clear_message(old, new, message):
    assert old in GOOD
    with pytest.raises(RecipeError, match=message):
        parse_recipe(GOOD.replace(old, new, 1))


def test_not_toml_and_no_stages():
    with pytest.raises(RecipeError, match="not valid TOML"):
        parse_recipe("[[stage]\n")
    with pytest.raises(RecipeError, match="no \\[\\[stage\\]\\] tables"):
        parse_recipe("[recipe]\nname='x'\n")


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.toml")
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe("no-such-recipe")


def test_a_shipped_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ here
    shipped = REPO / "recipes" / "lenet5-fast.toml"
    for name in ("lenet5-fast", "lenet5-fast.toml", "recipes/lenet5-fast.toml"):
        assert find_recipe(name).resolve() == shipped
    assert load_recipe("resnet20").name == "resnet20"
    mine = tmp_path / "recipes" / "lenet5-fast.toml"  # a file of the user's wins over the shipped one
    mine.parent.mkdir()
    mine.write_text(GOOD)
    assert find_recipe("recipes/lenet5-fast.toml") == Path("recipes/lenet5-fast.toml")
    with pytest.raises(RecipeError, match="recipe not found"):
        find_recipe(tmp_path / "elsewhere" / "lenet5-fast.toml")  # a path that names a folder is never redirected


@pytest.mark.parametrize("path", sorted((REPO / "recipes").rglob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_load(path):
    assert load_recipe(path).stages
