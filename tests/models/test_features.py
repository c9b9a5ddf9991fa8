from data import prepare
from models import features


def test_every_feature_and_the_label_are_canonical_columns():
    assert set(features.FEATURE_NAMES) <= set(prepare.CANONICAL_COLUMNS)
    assert features.LABEL_KEY in prepare.CANONICAL_COLUMNS


def test_the_curated_schema_requires_exactly_the_required_features():
    # A fixed shape makes Transform parse the feature as always present (and
    # the signatures refuse a complaint without it); the others are optional.
    from data import schema

    curated = {f.name: f for f in schema.load().feature}
    assert {n for n in features.FEATURE_NAMES if curated[n].HasField("shape")} == set(
        features.REQUIRED_FEATURE_NAMES
    )
    assert features.REQUIRED_FEATURE_NAMES == ("product", "company_response", "timely_response")
    assert all(curated[n].value_count.max == 1 for n in schema.OPTIONAL_VALUES)


def test_names_are_unique_and_the_label_is_not_a_feature():
    assert len(set(features.FEATURE_NAMES)) == len(features.FEATURE_NAMES)
    assert features.LABEL_KEY not in features.FEATURE_NAMES


def test_index_ranges_leave_room_for_unknown_and_missing_values():
    product = next(f for f in features.CATEGORICAL_FEATURES if f.name == "product")
    assert product.num_indices == product.vocab_size + features.OOV_BUCKETS
    zip_code = features.BUCKETIZED_FEATURES[0]
    assert zip_code.num_indices == zip_code.num_buckets + 1


def test_transformed_names_follow_the_xf_convention():
    assert features.transformed_name("state") == "state_xf"
    assert features.TRANSFORMED_LABEL_KEY == "consumer_disputed_xf"
