"""``first_few``: a long list named by its start and its size, a short one in full."""

from gradhealth.core.words import first_few


def test_a_short_list_is_named_in_full() -> None:
    assert first_few(["a", "b", "c"]) == "a, b, c"
    assert first_few(["a", "b", "c"], 3) == "a, b, c"


def test_a_long_list_names_its_start_and_counts_the_rest() -> None:
    names = [f"layer{i}" for i in range(12)]
    assert first_few(names) == "layer0, layer1, layer2, layer3, layer4 and 7 more"
    assert first_few(names, 2) == "layer0, layer1 and 10 more"


def test_an_empty_list_is_empty() -> None:
    assert first_few([]) == ""
