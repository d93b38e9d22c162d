"""fanout_deps(): the repositories fanout needs, for this and other workspaces.

A workspace that depends on fanout loads this file and calls fanout_deps();
every repository is guarded with `maybe`, so the consumer can define its own
first. Everything comes from Debian packages: nothing is downloaded.
"""

load("@bazel_tools//tools/build_defs/repo:utils.bzl", "maybe")
load(":pkg_config.bzl", "coverage_tools_stub", "pkg_config_repository", "rules_cc_shim")

_ABSL_MODULES = [
    "absl_flags",
    "absl_flags_parse",
    "absl_flags_usage",
    "absl_strings",
    "absl_str_format_internal",
    "absl_synchronization",
    "absl_time",
]

def fanout_deps():
    """Declares the toolchain rule repositories and every system library."""
    maybe(rules_cc_shim, name = "rules_cc")
    maybe(
        native.local_repository,
        name = "rules_java",
        path = "/usr/share/bazel/rules/java",
    )
    maybe(
        native.local_repository,
        name = "platforms",
        path = "/usr/share/bazel/tools/platforms",
    )

    # Bazel downloads this for `bazel query` over test rules otherwise.
    maybe(coverage_tools_stub, name = "remote_coverage_tools")
    maybe(
        pkg_config_repository,
        name = "system_absl",
        modules = _ABSL_MODULES,
        apt_package = "libabsl-dev",
    )
    maybe(
        pkg_config_repository,
        name = "system_gtest",
        modules = ["gmock", "gtest"],
        apt_package = "libgtest-dev",
    )
    maybe(
        pkg_config_repository,
        name = "system_benchmark",
        modules = ["benchmark"],
        apt_package = "libbenchmark-dev",
    )
    maybe(
        pkg_config_repository,
        name = "system_tbb",
        modules = ["tbb"],
        apt_package = "libtbb-dev",
    )
    maybe(
        pkg_config_repository,
        name = "system_cereal",
        headers = ["cereal/cereal.hpp", "cereal/archives/binary.hpp"],
        apt_package = "libcereal-dev",
    )
    maybe(
        pkg_config_repository,
        name = "system_thread_pool",
        headers = ["thread_pool/thread_pool.hpp"],
        apt_package = "libthread-pool-dev",
    )
    maybe(
        pkg_config_repository,
        name = "system_mpi",
        modules = ["ompi-c"],
        apt_package = "libopenmpi-dev openmpi-bin",
    )
