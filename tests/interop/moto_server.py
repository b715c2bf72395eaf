"""A local S3 server for the tests: moto's, on 127.0.0.1 and a free port.

Usage: moto_server.py BUCKET...

Starts the server, waits until it answers, creates the buckets, then prints
one line of JSON, {"endpoint": "http://127.0.0.1:PORT"}, and serves until
its standard input closes (the test ends) or it is killed.

moto checks `If-None-Match: *` (S3's put-if-absent) and then writes, in two
steps; with its threaded server two requests racing for the same key could
both pass the check, which S3 itself never allows. So requests are handled
one at a time here: the conditional writes the tests rely on are then as
atomic as on S3.
"""

import json
import sys
import threading
import time

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def main() -> None:
    buckets = sys.argv[1:]
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # The whole body is produced inside the lock.
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True)
    endpoint = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)

    print(json.dumps({"endpoint": endpoint}), flush=True)
    # Serve until the test closes our standard input (or kills us).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
