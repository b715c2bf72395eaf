"""pyarrow's side of the Flight benchmark (benches/flight.rs runs it).

The first line on stdin is a JSON setup:
  {"uri": "grpc://127.0.0.1:PORT",
   "ticket": "<hex of a Flight ticket from GetFlightInfo>",
   "files": ["/abs/part-0.parquet", ...],
   "grpc_options": [["grpc.http2.max_frame_size", 16777215], ...]}  # optional
and it prints one JSON line: {"pyarrow": "26.0.1", "cpus": 2}.

Then each line on stdin is one measurement to make, answered by one JSON
line on stdout {"rows": N, "seconds": S, "cpu": C, "nbytes": B,
"ipc_bytes": I}:
  flight        DoGet of the ticket with pyarrow.flight, read_all() into a
                Table (the time covers the DoGet call and reading every
                message);
  parquet       pyarrow.parquet.read_table(files) with its defaults (all
                cores; strings come back as string_view, as the files'
                stored Arrow schema says);
  parquet-utf8  the same with the strings read as plain `string` (Utf8),
                the types lake serves over Flight.
An empty line or EOF ends it. `cpu` is this process's CPU time (all
threads) during the measurement, `nbytes` the table's Table.nbytes and
`ipc_bytes` the size of the table as an uncompressed Arrow IPC stream
(computed after the timing).
"""

import json
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq


def ipc_size(table):
    sink = pa.MockOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.size()


def main():
    setup = json.loads(sys.stdin.readline())
    options = [tuple(option) for option in setup.get("grpc_options", [])]
    client = flight.FlightClient(setup["uri"], generic_options=options)
    ticket = flight.Ticket(bytes.fromhex(setup["ticket"]))
    files = setup["files"]
    stored = pq.read_schema(files[0])
    as_utf8 = pa.schema(
        [
            f.with_type(pa.string()) if f.type == pa.string_view() else f
            for f in stored
        ],
        metadata=stored.metadata,
    )
    print(json.dumps({"pyarrow": pa.__version__, "cpus": pa.cpu_count()}), flush=True)

    for line in sys.stdin:
        what = line.strip()
        if not what:
            break
        started = time.perf_counter()
        cpu = time.process_time()
        if what == "flight":
            table = client.do_get(ticket).read_all()
        elif what == "parquet":
            table = pq.read_table(files)
        elif what == "parquet-utf8":
            table = pq.read_table(files, schema=as_utf8)
        else:
            sys.exit(f"unknown measurement {what!r}")
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        answer = {
            "rows": table.num_rows,
            "seconds": seconds,
            "cpu": cpu,
            "nbytes": table.nbytes,
            "ipc_bytes": ipc_size(table),
        }
        del table
        print(json.dumps(answer), flush=True)
    client.close()


if __name__ == "__main__":
    main()
