#!/bin/sh
# Stands in for Bazel's remote_coverage_tools, which `bazel test` would
# otherwise try to download; fanout does not produce combined coverage reports.
exit 0
