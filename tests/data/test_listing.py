from data.listing import shortened


def test_long_lists_name_the_first_values_and_count_the_rest():
    values = [f"v{i}" for i in range(46)]
    assert shortened(values) == "v0, v1, v2, v3, v4 … and 41 more"
    assert shortened(values[:5]) == "v0, v1, v2, v3, v4"
    assert shortened(values, limit=2) == "v0, v1 … and 44 more"
