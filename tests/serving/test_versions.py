"""TF Serving's version-folder rule, which the Pusher and models.config share."""

from serving import versions


def test_versions_are_numeric_folders_compared_as_numbers():
    names = ["9", "10/", "assets", "tmp-123", "2"]
    assert versions.version_numbers(names) == [2, 9, 10]
    assert versions.served_version(names) == 10


def test_no_version_folder_serves_nothing():
    assert versions.served_version(["README", "staging/"]) is None
    assert versions.version_numbers([]) == []
