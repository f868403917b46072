"""The command line's import-free table of recipes and data sets matches the real ones."""

from tfp_flows import catalog, datasets, models


def test_catalog_lists_every_recipe_and_data_set_as_the_zoo_declares_them():
    assert list(catalog.MODELS) == list(models.RECIPES)
    for name, recipe in models.RECIPES.items():
        entry = catalog.MODELS[name]
        assert (entry.description, entry.default_data, entry.image) == (
            recipe.description, recipe.default_data, recipe.image), name
    assert {k: v[1] for k, v in datasets.DATASETS.items()} == catalog.DATASETS
    assert {k: v[1] for k, v in datasets.CONDITIONAL_DATASETS.items()} == (
        catalog.CONDITIONAL_DATASETS)
    assert set(catalog.SKLEARN_DATASETS) <= set(catalog.DATASETS)
