"""DEVELOPMENT STAND-IN for a Kubeflow cluster's ML Metadata gRPC service.

Every KFP install runs ML Metadata's `metadata_store_server` (the image
gcr.io/tfx-oss-public/ml_metadata_store_server, 1.14.0 in KFP's manifests from
2.5 to 2.17: manifests/kustomize/base/metadata/base/metadata-grpc-deployment.yaml)
behind the service `metadata-grpc-service:8080`. That server is a gRPC front
to one MetadataStore on MySQL; it is not on PyPI. This stand-in is the same
front in Python: each `ml_metadata.MetadataStoreService` RPC is handed, as
its serialized request, to a MetadataStore of the ml-metadata library
installed here (1.16, the version TFX 1.16 needs) on SQLite or MySQL, and its
errors go back as the same gRPC status codes. Clients use the real gRPC
client path (`MetadataStoreClientConfig`), as tasks in a cluster do.

How calls are served, as the real server does on MySQL
(ml_metadata/metadata_store/metadata_store_service_impl.cc at v1.14.0: every
RPC handler calls `CreateMetadataStore(connection_config_)`, a connection of
its own, and gRPC's thread pool runs handlers at once): on MySQL each call
gets its own MetadataStore, concurrently, and a transaction that loses a
deadlock comes back to the client as ABORTED (the client retries: ml-metadata's
`MetadataStore._call`), never retried here. On SQLite, which takes one
writer, calls are served one at a time (a cluster's server is on MySQL).

What differs from a cluster: the server library is 1.16 here, 1.14 there
(see docs/kubeflow.md).

    python -m standins.mlmd_grpc_server --metadata-path build/kfp/metadata.sqlite --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures

_SERVICE_NAME = "MetadataStoreService"
_GRPC_CODES = None


def _status_code(error_code: int):
    import grpc

    global _GRPC_CODES
    if _GRPC_CODES is None:
        _GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
    return _GRPC_CODES.get(error_code, grpc.StatusCode.UNKNOWN)


class MetadataGrpcStandin:
    """A running stand-in server; `address` is its `127.0.0.1:PORT`."""

    def __init__(self, connection_config, port: int = 0):
        import grpc
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_service_pb2 as service_pb2

        self._connection_config = connection_config
        self._concurrent = connection_config.HasField("mysql")
        # SQLite: one handle, one call at a time (one handle is not safe for
        # concurrent calls, and SQLite takes one writer).
        self._store = None if self._concurrent else metadata_store.MetadataStore(connection_config)
        self._lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0  # how many calls were ever served at once
        service = service_pb2.DESCRIPTOR.services_by_name[_SERVICE_NAME]
        handlers = {}
        for method in service.methods:
            request_class = getattr(service_pb2, method.input_type.name)
            response_class = getattr(service_pb2, method.output_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._handler(method.name, response_class),
                request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString,
            )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.full_name, handlers),)
        )
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        """Counts the call in flight while it is served."""
        with self._counter_lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._counter_lock:
                self._in_flight -= 1

    def _handler(self, method_name: str, response_class):
        from ml_metadata import errors
        from ml_metadata.metadata_store import metadata_store

        def handle(request, context):
            response = response_class()
            try:
                with contextlib.nullcontext() if self._concurrent else self._lock, self._serving():
                    store = self._store or metadata_store.MetadataStore(self._connection_config)
                    # The library's own request path: the serialized request
                    # goes to the C++ MetadataStore, as in metadata_store_server.
                    store._call_method(method_name, request, response)
            except errors.StatusError as error:
                context.abort(_status_code(error.error_code), error.message)
            return response

        return handle

    def start(self) -> MetadataGrpcStandin:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def __enter__(self) -> MetadataGrpcStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def sqlite_standin(path: str, port: int = 0) -> MetadataGrpcStandin:
    from tfx.orchestration import metadata

    return MetadataGrpcStandin(metadata.sqlite_metadata_connection_config(path), port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m standins.mlmd_grpc_server",
        description="Serve an SQLite ML Metadata store over MLMD's gRPC API on 127.0.0.1 "
        "(a development stand-in for a KFP cluster's metadata-grpc-service).",
    )
    parser.add_argument("--metadata-path", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    args = parser.parse_args(argv)
    server = sqlite_standin(args.metadata_path, args.port).start()
    print(
        f"ML Metadata gRPC stand-in on {server.address} (store {args.metadata_path}); "
        "Ctrl-C stops it",
        flush=True,
    )
    try:
        server._server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
