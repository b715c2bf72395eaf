"""A real Flight SQL client against `lake serve`: the ADBC Flight SQL driver
(adbc-driver-flightsql 1.13, the Go driver) through its DBAPI.

Run by tests/it/interop.rs (`interop_flight_adbc_...`) against a server on
the built example project with an auth file of three password principals (a
reader, a writer, an admin) and a trainer with an API token:

    python flight_adbc.py --uri grpc://127.0.0.1:PORT --customers 20 \
        --reader alice PASS --writer loader PASS --admin root PASS \
        --trainer-token lake_...

Prints one line per check and a summary; exits 1 if any check failed.
"""

import argparse
import sys
import traceback

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow as pa

AdbcStatusCode = adbc_driver_manager.AdbcStatusCode

# The example project's customer 1 and 2 (seeds/customers.csv, lowercased by
# stg_customers).
FIRST_EMAIL = "ada.lovelace@example.com"
INGESTED = "adbc_interop_scores"


def connect(uri, user, password):
    # lake serve has no transactions: autocommit, or the DBAPI warns.
    return flight_sql.connect(
        uri,
        db_kwargs={"username": user, "password": password},
        autocommit=True,
    )


def rows(conn, sql, parameters=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetchall()


def expect_error(what, action, error_class, status_code, *needles):
    """Runs `action`, which must raise `error_class` with the ADBC
    `status_code` and every needle in its message."""
    try:
        action()
    except adbc_driver_manager.Error as e:
        message = str(e)
        assert isinstance(e, error_class), (
            f"{what}: {type(e).__name__} instead of {error_class.__name__}: {message}"
        )
        assert e.status_code == status_code, (
            f"{what}: status {e.status_code!r} instead of {status_code!r}: {message}"
        )
        for needle in needles:
            assert needle in message, f"{what}: {needle!r} not in {message!r}"
        return message
    raise AssertionError(f"{what}: no error")


class Checks:
    def __init__(self, args):
        self.args = args
        self.uri = args.uri
        self.results = []

    def run(self, name, check):
        try:
            detail = check()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            self.results.append((name, False, f"{type(e).__name__}: {e}"))
            traceback.print_exc(file=sys.stderr)
        else:
            self.results.append((name, True, detail or ""))

    # -- the checks ---------------------------------------------------------

    def query(self):
        user, password = self.args.reader
        with connect(self.uri, user, password) as conn:
            got = rows(conn, "select count(*) as n from curated.customer_summary")
            assert got == [(self.args.customers,)], got
            got = rows(
                conn,
                "select customer_id, email, country from curated.customer_summary "
                "order by customer_id limit 2",
            )
            # The reader sees PII masked, the other columns as they are.
            assert got == [(1, "***", "FR"), (2, "***", "GB")], got
            with conn.cursor() as cur:
                cur.execute("select customer_id, country from curated.customer_summary")
                table = cur.fetch_arrow_table()
            assert table.num_rows == self.args.customers, table.num_rows
            assert table.column_names == ["customer_id", "country"], table.column_names
        return f"{self.args.customers} customers, email masked for {user}"

    def get_objects(self):
        user, password = self.args.reader
        with connect(self.uri, user, password) as conn:
            objects = conn.adbc_get_objects().read_all().to_pylist()
        catalogs = {c["catalog_name"]: c for c in objects}
        assert "lake" in catalogs, list(catalogs)
        schemas = {
            s["db_schema_name"]: s for s in catalogs["lake"]["catalog_db_schemas"] or []
        }
        assert "curated" in schemas, list(schemas)
        # Metadata lists only the zones the role reads.
        assert "raw" not in schemas, f"raw listed for a reader: {list(schemas)}"
        tables = {t["table_name"]: t for t in schemas["curated"]["db_schema_tables"]}
        assert "customer_summary" in tables, list(tables)
        columns = [c["column_name"] for c in tables["customer_summary"]["table_columns"]]
        assert columns[:3] == ["customer_id", "email", "country"], columns
        # The admin sees raw too.
        user, password = self.args.admin
        with connect(self.uri, user, password) as conn:
            objects = conn.adbc_get_objects(
                depth="tables", db_schema_filter="raw"
            ).read_all().to_pylist()
        raw = [
            t["table_name"]
            for c in objects
            for s in c["catalog_db_schemas"] or []
            if s["db_schema_name"] == "raw"
            for t in s["db_schema_tables"] or []
        ]
        assert "customers" in raw, raw
        return f"curated: {len(tables)} tables for the reader; raw: {len(raw)} for the admin"

    def table_schema(self):
        user, password = self.args.reader
        with connect(self.uri, user, password) as conn:
            schema = conn.adbc_get_table_schema(
                "customer_summary", db_schema_filter="curated"
            )
        email = schema.field("email").type
        assert (
            pa.types.is_string(email)
            or pa.types.is_large_string(email)
            or pa.types.is_string_view(email)
        ), schema
        assert pa.types.is_integer(schema.field("customer_id").type), schema
        assert schema.names[:3] == ["customer_id", "email", "country"], schema.names
        return f"{len(schema)} columns"

    def prepared(self):
        user, password = self.args.admin
        sql = (
            "select customer_id, email, country from curated.customer_summary "
            "where customer_id = $1"
        )
        with connect(self.uri, user, password) as conn:
            with conn.cursor() as cur:
                cur.execute(sql, parameters=(1,))
                first = cur.fetchall()
                # The same statement again with another value.
                cur.execute(sql, parameters=(2,))
                second = cur.fetchall()
                cur.execute(sql, parameters=(-1,))
                none = cur.fetchall()
            # The DBAPI's own paramstyle (qmark) works too.
            qmark = rows(
                conn,
                "select country from curated.customer_summary where customer_id = ?",
                (2,),
            )
        assert first == [(1, FIRST_EMAIL, "FR")], first
        assert len(second) == 1 and second[0][0] == 2 and second[0][2] == "GB", second
        assert none == [], none
        assert qmark == [("GB",)], qmark
        return "$1 bound three times, ? once"

    def ingest(self):
        data = pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int64()),
                "score": pa.array([0.5, 1.5, None], pa.float64()),
                "label": pa.array(["a", "b", "c"], pa.string()),
            }
        )
        user, password = self.args.writer
        with connect(self.uri, user, password) as conn:
            with conn.cursor() as cur:
                written = cur.adbc_ingest(INGESTED, data, mode="create")
                assert written in (3, -1), written
                appended = cur.adbc_ingest(INGESTED, data.slice(0, 1), mode="append")
                assert appended in (1, -1), appended
                # Creating it again fails: it exists.
                expect_error(
                    "ingest create over an existing table",
                    lambda: cur.adbc_ingest(INGESTED, data, mode="create"),
                    adbc_driver_manager.ProgrammingError,
                    AdbcStatusCode.ALREADY_EXISTS,
                    "exists",
                )
            # A writer still reads only what a reader reads.
            expect_error(
                "writer reading raw",
                lambda: rows(conn, f"select * from raw.{INGESTED}"),
                adbc_driver_manager.ProgrammingError,
                AdbcStatusCode.UNAUTHORIZED,
                "PermissionDenied",
                "raw",
            )
        user, password = self.args.admin
        with connect(self.uri, user, password) as conn:
            got = rows(conn, f"select id, score, label from raw.{INGESTED} order by id, label")
        assert got == [(1, 0.5, "a"), (1, 0.5, "a"), (2, 1.5, "b"), (3, None, "c")], got
        # A reader may not ingest.
        user, password = self.args.reader
        with connect(self.uri, user, password) as conn:
            with conn.cursor() as cur:
                expect_error(
                    "reader ingesting",
                    lambda: cur.adbc_ingest("reader_upload", data, mode="create"),
                    adbc_driver_manager.ProgrammingError,
                    AdbcStatusCode.UNAUTHORIZED,
                    "PermissionDenied",
                    "bulk-ingest",
                )
        return f"raw.{INGESTED}: 3 rows created, 1 appended, read back as admin"

    def api_token(self):
        # An API token from `lake auth new-token`, sent as a bearer token with
        # no handshake (as docs/flight.md shows).
        conn = flight_sql.connect(
            self.uri,
            db_kwargs={
                "adbc.flight.sql.authorization_header": f"Bearer {self.args.trainer_token}"
            },
            autocommit=True,
        )
        with conn:
            got = rows(
                conn,
                "select customer_id, email from curated.customer_summary "
                "order by customer_id limit 1",
            )
            # A trainer is not an admin: PII masked.
            assert got == [(1, "***")], got
        conn = flight_sql.connect(
            self.uri,
            db_kwargs={"adbc.flight.sql.authorization_header": "Bearer lake_forged"},
            autocommit=True,
        )
        with conn:
            expect_error(
                "a forged token",
                lambda: rows(conn, "select 1"),
                adbc_driver_manager.ProgrammingError,
                AdbcStatusCode.UNAUTHENTICATED,
                "authentication failed",
            )
        return "bearer token accepted, a forged one refused"

    def bad_password(self):
        def login(user, password):
            # The driver logs in when connecting; a connection that opens
            # anyway must fail its first query.
            with connect(self.uri, user, password) as conn:
                rows(conn, "select 1")

        user, _ = self.args.reader
        message = expect_error(
            "a wrong password",
            lambda: login(user, "not the password"),
            adbc_driver_manager.ProgrammingError,
            AdbcStatusCode.UNAUTHENTICATED,
            "Unauthenticated",
            "authentication failed",
        )
        assert "not the password" not in message, message
        expect_error(
            "an unknown user",
            lambda: login("mallory", "x"),
            adbc_driver_manager.ProgrammingError,
            AdbcStatusCode.UNAUTHENTICATED,
            "Unauthenticated",
            "authentication failed",
        )
        return f"ProgrammingError {message!r}"

    def forbidden_zone(self):
        user, password = self.args.reader
        with connect(self.uri, user, password) as conn:
            message = expect_error(
                "a reader reading raw",
                lambda: rows(conn, "select * from raw.customers"),
                adbc_driver_manager.ProgrammingError,
                AdbcStatusCode.UNAUTHORIZED,
                "PermissionDenied",
                f"{user} (role reader) may not read the raw zone",
            )
            # The connection still works after the refusal.
            assert rows(conn, "select 1 as one") == [(1,)]
        return f"ProgrammingError {message!r}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--customers", type=int, required=True)
    for role in ["reader", "writer", "admin"]:
        parser.add_argument(f"--{role}", nargs=2, metavar=("USER", "PASSWORD"), required=True)
    parser.add_argument("--trainer-token", required=True)
    args = parser.parse_args()
    checks = Checks(args)
    for name in [
        "query",
        "get_objects",
        "table_schema",
        "prepared",
        "ingest",
        "api_token",
        "bad_password",
        "forbidden_zone",
    ]:
        checks.run(name, getattr(checks, name))
    failed = [r for r in checks.results if not r[1]]
    for name, ok, detail in checks.results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    print(
        f"adbc_driver_flightsql {adbc_driver_flightsql.__version__}: "
        f"{len(checks.results) - len(failed)} passed, {len(failed)} failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
