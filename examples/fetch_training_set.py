"""Fetch a point-in-time-correct training set from `lake serve` over Arrow
Flight, the way a training loop would: one JSON command, no generated code.

    lake build                      # the example project, with its feature views
    lake serve &                    # grpc://127.0.0.1:50051
    python examples/fetch_training_set.py [grpc://host:port]

The address comes from the first argument, else LAKE_FLIGHT_URI, else
grpc://127.0.0.1:50051. With LAKE_TOKEN set (an API token from
`lake auth new-token`, for a principal with the `trainer` or `admin` role),
it is sent as a bearer token. Needs pyarrow; pandas is used when installed.
See docs/features.md.
"""

import json
import os
import sys

import pyarrow as pa
import pyarrow.flight as flight

DEFAULT_URI = "grpc://127.0.0.1:50051"

# The `churn` feature service of the example project, joined point in time
# to the labelled spine `raw.churn_labels` (customer_id, event_timestamp,
# churned). Feature columns come back as `<view>__<feature>`.
REQUEST = {
    "training_set": {
        "feature_service": "churn",
        "spine": {"table": "raw.churn_labels"},
        "full_feature_names": True,
    }
}


def fetch_training_set(client, request, options):
    """GetFlightInfo with the JSON command, then DoGet on every endpoint (a
    large spine is split over several; they could be fetched in parallel),
    in order. The tickets pin the Delta version of every table read: fetching
    one again later returns the same rows."""
    descriptor = flight.FlightDescriptor.for_command(json.dumps(request).encode())
    info = client.get_flight_info(descriptor, options)
    tables = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    table = pa.concat_tables(tables) if tables else info.schema.empty_table()
    return info, table


def main():
    uri = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LAKE_FLIGHT_URI", DEFAULT_URI)
    client = flight.FlightClient(uri)
    headers = []
    token = os.environ.get("LAKE_TOKEN")
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    options = flight.FlightCallOptions(headers=headers)

    info, table = fetch_training_set(client, REQUEST, options)
    print(f"{uri}: {len(info.endpoints)} endpoint(s), {info.total_records} spine rows")
    try:
        import pandas  # noqa: F401  (optional)
    except ImportError:
        frame = table
        print(f"training set (pyarrow.Table, pandas not installed): shape ({table.num_rows}, {table.num_columns})")
        for row in table.slice(0, 5).to_pylist():
            print(row)
    else:
        frame = table.to_pandas()
        print(f"training set (pandas.DataFrame): shape {frame.shape}")
        print(frame.head())

    # A training loop would now split features from labels:
    features = [c for c in table.column_names if "__" in c]
    print(f"label: churned; features: {', '.join(features)}")
    return frame


if __name__ == "__main__":
    main()
