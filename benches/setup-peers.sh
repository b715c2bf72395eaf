#!/usr/bin/env bash
# Creates benches/.venv with the peers the benchmarks compare lake against,
# all from PyPI: dbt-core 1.11 (newer releases download a binary at install
# time, which fails offline) with dbt-duckdb; duckdb 1.5 with its tpch
# extension (the TPC-H query texts); pyarrow and the ADBC Flight SQL driver
# (the Flight throughput benchmark); numpy and deltalake (the training-set
# benchmark's data, benches/features_data.py).
#
# Feast (the training-set benchmark's third peer, benches/features_peers.py
# with engine "feast") goes in a second venv, <venv>-feast: its dependency
# SQLAlchemy[mypy] pulls mypy 2, which needs pathspec >= 1.0, while
# dbt-core 1.11 needs pathspec < 0.13.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LAKE_BENCH_VENV:-$here/.venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "dbt-core>=1.11,<1.12" "dbt-duckdb>=1.9,<1.12" \
  "duckdb==1.5.*" "duckdb-extension-tpch==1.5.*" "pyarrow" \
  "adbc-driver-flightsql==1.13.*" "adbc-driver-manager==1.13.*" \
  "numpy" "deltalake==1.6.*"
echo "peers installed in $venv"

feast_venv="$venv-feast"
python3 -m venv "$feast_venv"
"$feast_venv/bin/pip" install --quiet --upgrade pip
"$feast_venv/bin/pip" install --quiet "feast==0.67.*" "duckdb==1.5.*" "pyarrow" "numpy" "pandas"
echo "feast installed in $feast_venv"
