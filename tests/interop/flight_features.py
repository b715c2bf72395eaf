"""pyarrow.flight against `lake serve`: training sets through the JSON
command, tickets that return the same rows after new data lands, online
features, a spine uploaded through DoExchange, the list of feature services,
and the errors a client sees.

Run by tests/it/interop.rs (`interop_pyarrow_flight_...`) against a server on
the built example project, twice: before new data lands, then after the Rust
side appended an order of customer 16 (2026-11-20 20:00, 10.00) and ran
`lake build` again, with the same state folder:

    python flight_features.py --uri grpc://127.0.0.1:PORT --spine-rows 15 \
        --state DIR --phase before
    python flight_features.py --uri ... --state DIR --phase after

Prints one line per check and a summary; exits 1 if any check failed.
"""

import argparse
import base64
import json
import os
import sys
import time
import traceback

import pyarrow as pa
import pyarrow.flight as flight

TRAINING_SET = {
    "training_set": {
        "feature_service": "churn",
        "spine": {"table": "raw.churn_labels"},
        "full_feature_names": True,
    }
}

COLUMNS = [
    "customer_id",
    "event_timestamp",
    "churned",
    "customer_activity__events",
    "customer_activity__sessions",
    "customer_activity__checkouts",
    "customer_orders__orders_to_date",
    "customer_orders__revenue_to_date",
]

# Spine row 13 of seeds/churn_labels.csv: customer 16 on 2026-11-21. Before
# the new order: 3 orders (191.81); after: 4 (201.81).
ROW_16 = 12


def command(obj):
    return json.dumps(obj).encode()


def ipc_bytes(table):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def expect_error(what, action, *needles):
    """`action` must fail with a Flight error whose message has every needle."""
    try:
        action()
    except (flight.FlightError, pa.ArrowException) as e:
        message = str(e)
        for needle in needles:
            assert needle in message, f"{what}: {needle!r} not in {message!r}"
        return f"{type(e).__name__}: {message.splitlines()[0]}"
    raise AssertionError(f"{what}: no error")


class Checks:
    def __init__(self, args):
        self.args = args
        self.client = flight.FlightClient(args.uri)
        self.results = []

    def run(self, name, check):
        try:
            detail = check()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            self.results.append((name, False, f"{type(e).__name__}: {e}"))
            traceback.print_exc(file=sys.stderr)
        else:
            self.results.append((name, True, detail or ""))

    def state(self, name):
        return os.path.join(self.args.state, name)

    def fetch(self, tickets):
        return pa.concat_tables([self.client.do_get(t).read_all() for t in tickets])

    def training_set(self):
        descriptor = flight.FlightDescriptor.for_command(command(TRAINING_SET))
        info = self.client.get_flight_info(descriptor)
        assert info.schema.names == COLUMNS, info.schema.names
        assert info.total_records == self.args.spine_rows, info.total_records
        tickets = [e.ticket for e in info.endpoints]
        return info, tickets, self.fetch(tickets)

    def lookup(self, ids):
        request = {
            "online_features": {
                "feature_service": "churn",
                "entities": {"customer_id": ids},
            }
        }
        table = self.client.do_get(flight.Ticket(command(request))).read_all()
        return table.to_pydict()

    # -- before new data lands ----------------------------------------------

    def fetch_and_save(self):
        info, tickets, table = self.training_set()
        assert table.num_rows == self.args.spine_rows, table.num_rows
        assert table.column_names == COLUMNS, table.column_names
        rows = table.to_pydict()
        # Spine order, every spine row once.
        assert rows["customer_id"][:3] == [4, 5, 7], rows["customer_id"]
        assert rows["customer_id"][-1] == 99 and rows["customer_orders__orders_to_date"][-1] is None
        assert rows["customer_id"][ROW_16] == 16, rows["customer_id"]
        assert rows["customer_orders__orders_to_date"][ROW_16] == 3, rows
        with open(self.state("tickets.json"), "w") as f:
            json.dump([base64.b64encode(t.ticket).decode() for t in tickets], f)
        with open(self.state("before.arrows"), "wb") as f:
            f.write(ipc_bytes(table))
        return f"{table.num_rows} rows in {len(info.endpoints)} endpoint(s), columns {COLUMNS[3]}, ..."

    def same_ticket_twice(self):
        _, tickets, first = self.training_set()
        second = self.fetch(tickets)
        assert first.equals(second), "tables differ"
        assert ipc_bytes(first) == ipc_bytes(second), "bytes differ"
        return f"{len(ipc_bytes(first))} identical bytes"

    def online_features(self):
        got = self.lookup([4, 16, 99])
        assert got["customer_id"] == [4, 16, 99], got
        assert got["customer_activity__checkouts"] == [0, 1, None], got
        assert got["customer_orders__orders_to_date"] == [9, 3, None], got
        assert got["customer_orders__revenue_to_date"] == [1112.27, 191.81, None], got
        return "customers 4, 16 and an unknown 99"

    def uploaded_spine(self):
        # DoExchange: the spine goes up as record batches (pyarrow sends the
        # descriptor in a first message of its own), the training set comes
        # back in the spine's order, equal to the stored spine's rows.
        _, _, stored = self.training_set()
        spine = stored.select(["customer_id", "event_timestamp", "churned"])
        spine = spine.take([ROW_16, 0, ROW_16])
        request = {"training_set": {"feature_service": "churn", "full_feature_names": True}}
        writer, reader = self.client.do_exchange(
            flight.FlightDescriptor.for_command(command(request))
        )
        writer.begin(spine.schema)
        writer.write_table(spine)
        writer.done_writing()
        table = reader.read_all()
        writer.close()
        assert table.column_names == COLUMNS, table.column_names
        assert table.equals(stored.take([ROW_16, 0, ROW_16])), table.to_pydict()
        return f"{table.num_rows} uploaded spine rows joined"

    def feature_services(self):
        table = self.client.do_get(flight.Ticket(command({"feature_services": {}}))).read_all()
        names = table.column("name").to_pylist()
        assert names == ["churn"], names
        features = table.column("features").to_pylist()[0]
        assert "customer_orders:orders_to_date" in features, features
        return f"churn: {features}"

    def bad_commands(self):
        unknown = {
            "training_set": {
                "feature_service": "chrun",
                "spine": {"table": "raw.churn_labels"},
            }
        }
        first = expect_error(
            "an unknown feature service",
            lambda: self.client.get_flight_info(
                flight.FlightDescriptor.for_command(command(unknown))
            ),
            "unknown feature service 'chrun'",
            "did you mean 'churn'",
        )
        no_event = {
            "training_set": {
                "feature_service": "churn",
                "spine": {"sql": "select customer_id from raw.churn_labels"},
            }
        }
        expect_error(
            "a spine without event_timestamp",
            lambda: self.client.get_flight_info(
                flight.FlightDescriptor.for_command(command(no_event))
            ),
            "event_timestamp",
        )
        expect_error(
            "a misspelt key",
            lambda: self.client.do_get(
                flight.Ticket(command({"online_features": {"feature_service": "churn", "entitys": {}}}))
            ).read_all(),
            "entitys",
        )
        return first

    # -- after new data landed ----------------------------------------------

    def pinned_ticket_after_new_data(self):
        with open(self.state("tickets.json")) as f:
            tickets = [flight.Ticket(base64.b64decode(t)) for t in json.load(f)]
        with open(self.state("before.arrows"), "rb") as f:
            before = f.read()
        again = self.fetch(tickets)
        assert ipc_bytes(again) == before, "the pinned ticket returned other rows"
        return f"{again.num_rows} rows, {len(before)} identical bytes"

    def new_request_sees_new_data(self):
        _, _, table = self.training_set()
        rows = table.to_pydict()
        assert rows["customer_orders__orders_to_date"][ROW_16] == 4, rows
        assert rows["customer_orders__revenue_to_date"][ROW_16] == 201.81, rows
        return "customer 16: 4 orders"

    def online_features_refreshed(self):
        # The server reloads an online table within a second of a new version.
        deadline = time.monotonic() + 20
        while True:
            got = self.lookup([4, 16, 99])
            if got["customer_orders__orders_to_date"] == [9, 4, None]:
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.2)
        assert got["customer_orders__revenue_to_date"] == [1112.27, 201.81, None], got
        return "customer 16: 4 orders"


PHASES = {
    "before": [
        "fetch_and_save",
        "same_ticket_twice",
        "online_features",
        "uploaded_spine",
        "feature_services",
        "bad_commands",
    ],
    "after": [
        "pinned_ticket_after_new_data",
        "new_request_sees_new_data",
        "online_features_refreshed",
    ],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--spine-rows", type=int, default=15)
    parser.add_argument("--state", required=True)
    parser.add_argument("--phase", choices=sorted(PHASES), required=True)
    args = parser.parse_args()
    checks = Checks(args)
    for name in PHASES[args.phase]:
        checks.run(name, getattr(checks, name))
    failed = [r for r in checks.results if not r[1]]
    for name, ok, detail in checks.results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    print(
        f"pyarrow {pa.__version__} ({args.phase}): "
        f"{len(checks.results) - len(failed)} passed, {len(failed)} failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
