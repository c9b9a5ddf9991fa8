"""TF Serving's version-folder rule, which the Pusher and models.config share."""

from serving import versions


def test_versions_are_numeric_folders_compared_as_numbers():
    names = ["9", "10/", "assets", "tmp-123", "2"]
    assert versions.version_numbers(names) == [2, 9, 10]
    assert versions.served_version(names) == 10


def test_no_version_folder_serves_nothing():
    assert versions.served_version(["README", "staging/"]) is None
    assert versions.version_numbers([]) == []


def test_a_version_without_its_saved_model_is_not_served():
    # An interrupted push: TF Serving fails to load 12 and keeps serving 10.
    names = ["10", "12"]
    assert versions.served_version(names, lambda version: version != 12) == 10
    assert versions.served_version(names, lambda version: False) is None
