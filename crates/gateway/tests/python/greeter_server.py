"""A gRPC service in Python with reflection on, for the gateway's tests.

    greeter_server.py PROTO_ROOT INCLUDE... [--port PORT]

Loads acme/greeter/v1/greeter.proto from PROTO_ROOT at run time (grpcio-tools
compiles it; INCLUDE are the roots of its imports), serves it on 127.0.0.1,
and prints the port it listens on. Whatever methods that version of the file
declares are served: SayGoodbye exists only in version 2.
"""

import argparse
import sys
from concurrent import futures

import grpc
from grpc_reflection.v1alpha import reflection


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sys.path[:0] = args.roots
    protos, services = grpc.protos_and_services("acme/greeter/v1/greeter.proto")

    def reply(message, context):
        metadata = [f"{key}={value}" for key, value in context.invocation_metadata()]
        return protos.HelloReply(message=message, metadata=metadata)

    class Greeter(services.GreeterServicer):
        def SayHello(self, request, context):
            return reply(f"Hello, {request.name}!", context)

        def LeaveNote(self, request, context):
            if not request.text:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a note needs text")
            return reply(f"{request.author} left: {request.text}", context)

        def Forget(self, request, context):
            return reply(f"forgot {request.name}", context)

        def Impostor(self, request, context):
            return reply("the impostor answered", context)

        def SayGoodbye(self, request, context):
            return reply(f"Goodbye, {request.name}!", context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    services.add_GreeterServicer_to_server(Greeter(), server)
    greeter = protos.DESCRIPTOR.services_by_name["Greeter"].full_name
    reflection.enable_server_reflection((greeter, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
