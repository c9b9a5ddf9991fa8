from data import prepare
from models import features


def test_every_feature_and_the_label_are_canonical_columns():
    assert set(features.RAW_INPUT_NAMES) <= set(prepare.CANONICAL_COLUMNS)
    assert features.LABEL_KEY in prepare.CANONICAL_COLUMNS


def test_the_curated_schema_requires_exactly_the_required_features():
    # A fixed shape makes Transform parse the feature as always present (and
    # the signatures refuse a complaint without it); the others are optional.
    from data import schema

    curated = {f.name: f for f in schema.load().feature}
    assert {n for n in features.RAW_INPUT_NAMES if curated[n].HasField("shape")} == set(
        features.REQUIRED_INPUT_NAMES
    )
    assert features.REQUIRED_INPUT_NAMES == (
        "product",
        "company_response",
        "timely_response",
        "date_received",
        "date_sent_to_company",
    )
    assert all(curated[n].value_count.max == 1 for n in schema.OPTIONAL_VALUES)


def test_names_are_unique_and_the_label_is_not_a_feature():
    for names in (features.RAW_INPUT_NAMES, features.MODEL_FEATURE_NAMES):
        assert len(set(names)) == len(names)
        assert features.LABEL_KEY not in names


def test_the_model_never_reads_a_date_itself():
    # A date names its span; only what is derived from it is a model feature.
    assert not set(features.DATE_INPUT_NAMES) & set(features.MODEL_FEATURE_NAMES)


def test_derived_features_read_raw_inputs():
    raw = set(features.RAW_INPUT_NAMES)
    for derived in features.DERIVED_FEATURES:
        sources = {
            getattr(derived, attribute)
            for attribute in ("source", "start", "end")
            if hasattr(derived, attribute)
        } | set(getattr(derived, "sources", ()))
        assert sources and sources <= raw, derived


def test_index_ranges_leave_room_for_unknown_and_missing_values():
    product = next(f for f in features.CATEGORICAL_FEATURES if f.name == "product")
    assert product.num_indices == product.vocab_size + features.OOV_BUCKETS
    zip_code = features.BUCKETIZED_FEATURES[0]
    assert zip_code.num_indices == zip_code.num_buckets + 1


def test_transformed_names_follow_the_xf_convention():
    assert features.transformed_name("state") == "state_xf"
    assert features.TRANSFORMED_LABEL_KEY == "consumer_disputed_xf"
