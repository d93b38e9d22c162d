"""Compiler flags shared by every fanout target (see absl/copts)."""

FANOUT_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    # Options are designated-initialized: omitted fields keep their defaults.
    "-Wno-missing-field-initializers",
]

FANOUT_TEST_COPTS = FANOUT_COPTS
