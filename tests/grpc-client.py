#!/usr/bin/env python3
# grpc-client.py -- the gRPC client tests/grpc.sh drives: Debian's
# python3-grpcio with stubs generated from share/porch/*.proto (by
# grpc.sh, into the directory given by --stubs).  Each command prints
# key=value lines (one per fact) for the shell test to check.
#
#   grpc-client.py --stubs DIR --port N [--tls CERT] COMMAND [ARGS]
import argparse
import sys
import threading
import time


def status_lines(e, prefix=""):
    """The status of a failed call, and its retry delay if any."""
    print(f"{prefix}status={e.code().name}")
    print(f"{prefix}details={e.details()}")
    for k, v in (e.trailing_metadata() or ()):
        if k == "retry-after-ms":
            print(f"{prefix}retry-after-ms={v}")
        if k == "grpc-status-details-bin":
            print(f"{prefix}status-details-bytes={len(v)}")
            if b"type.googleapis.com/google.rpc.RetryInfo" in v:
                print(f"{prefix}retry-info=yes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--port", required=True)
    ap.add_argument("--tls")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("command")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    sys.path.insert(0, a.stubs)
    import grpc
    import porch_pb2 as pb
    import porch_pb2_grpc as pg
    import health_pb2 as hpb
    import health_pb2_grpc as hpg
    import reflection_pb2 as rpb
    import reflection_pb2_grpc as rpg

    target = "127.0.0.1:" + a.port
    if a.tls:
        creds = grpc.ssl_channel_credentials(open(a.tls, "rb").read())
        ch = grpc.secure_channel(target, creds, options=(
            ("grpc.ssl_target_name_override", "localhost"),))
    else:
        ch = grpc.insecure_channel(target)
    stub = pg.PorchStub(ch)
    cmd, args, T = a.command, a.args, a.timeout

    def generate(text, timeout=T, settings=None, metadata=None, first=None):
        req = pb.GenerateRequest(text=text, session="s1")
        if settings is not None:
            req.settings.CopyFrom(settings)
        for k, v in (metadata or {}).items():
            req.metadata[k] = v
        tokens = 0
        try:
            call = stub.Generate(req, timeout=timeout)
            for r in call:
                if r.done:
                    print(f"text={r.text.decode()}")
                    print(f"finish={r.finish_reason}")
                    print(f"usage={r.usage.prompt_tokens},{r.usage.completion_tokens},"
                          f"{r.usage.total_tokens}")
                    print(f"request-id={r.request_id}")
                else:
                    tokens += 1
                    if tokens == 1:
                        print(f"first-request-id={r.request_id}")
                        sys.stdout.flush()
                        if first is not None:
                            first(call)
            print(f"tokens={tokens}")
            print("status=OK")
        except grpc.RpcError as e:
            print(f"tokens={tokens}")
            status_lines(e)

    if cmd == "health":
        r = stub.HealthCheck(pb.HealthCheckRequest(), timeout=T)
        print(f"healthy={r.healthy}")
        print(f"version={r.version}")
        print(f"state={r.status}")
    elif cmd == "generate":
        s = pb.GenerationSettings()
        md = {}
        for kv in args[1:]:
            k, v = kv.split("=", 1)
            if k == "max_tokens":
                s.max_tokens = int(v)
            elif k == "temperature":
                s.temperature = float(v)
            elif k == "stop":
                s.stop.append(v)
            elif k == "timeout":
                T = float(v)
            else:
                md[k] = v
        generate(args[0], timeout=T, settings=s, metadata=md)
    elif cmd == "cancel-call":
        # cancels the call once its first token has come
        generate(args[0], first=lambda call: call.cancel())
    elif cmd == "many":
        # N Generate calls at once: how many ended with each status
        n, text = int(args[0]), args[1]
        codes, retry, info, lock = {}, [], [], threading.Lock()

        def one():
            try:
                for _ in stub.Generate(pb.GenerateRequest(text=text), timeout=T):
                    pass
                c = "OK"
            except grpc.RpcError as e:
                c = e.code().name
                for k, v in (e.trailing_metadata() or ()):
                    with lock:
                        if k == "retry-after-ms":
                            retry.append(v)
                        if (k == "grpc-status-details-bin" and
                                b"type.googleapis.com/google.rpc.RetryInfo" in v):
                            info.append(v)
            with lock:
                codes[c] = codes.get(c, 0) + 1
        th = [threading.Thread(target=one) for _ in range(n)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        for c in sorted(codes):
            print(f"{c}={codes[c]}")
        if retry:
            print(f"retry-after-ms={retry[0]}")
        if info:
            print("retry-info=yes")
    elif cmd == "task":
        # submit, watch it run, read it back
        kw = dict(name="nightly", description="a test task", payload=args[0].encode(),
                  session="s1")
        if len(args) > 1:
            kw["timeout_secs"] = float(args[1])
        r = stub.SubmitTask(pb.SubmitTaskRequest(**kw), timeout=T)
        print(f"task={r.task_id}")
        print(f"timestamp={r.timestamp}")
        kinds = []
        for p in stub.SubscribeProgress(pb.SubscribeProgressRequest(task_id=r.task_id),
                                        timeout=T):
            k = pb.Progress.Kind.Name(p.kind)
            kinds.append(k if k != "STAGE_ENTERED" and k != "STAGE_LEFT" else
                         f"{k}:{p.stage}")
            if p.kind == pb.Progress.OUTCOME:
                print(f"outcome={pb.TaskStatus.Name(p.status)}")
                print(f"result={p.result.decode()}")
                if p.HasField("error"):
                    print(f"error={p.error.code}:{p.error.grpc_code}")
        print("progress=" + " ".join(kinds))
        t = stub.GetTask(pb.GetTaskRequest(task_id=r.task_id), timeout=T)
        print(f"get-status={pb.TaskStatus.Name(t.status)}")
        print(f"get-name={t.name}")
        print(f"get-result={t.result.decode()}")
        print(f"get-attempts={t.attempts}")
        print("get-timings=" + ",".join(sorted(t.timings.keys())))
    elif cmd == "cancel-task":
        # submit a slow task, watch it until it runs, cancel it
        r = stub.SubmitTask(pb.SubmitTaskRequest(payload=args[0].encode()), timeout=T)
        print(f"task={r.task_id}")
        it = stub.SubscribeProgress(pb.SubscribeProgressRequest(task_id=r.task_id), timeout=T)
        kinds = []
        for p in it:
            kinds.append(pb.Progress.Kind.Name(p.kind))
            if p.kind == pb.Progress.TOKEN and "TOKEN" not in kinds[:-1]:
                c = stub.CancelTask(pb.CancelTaskRequest(task_id=r.task_id), timeout=T)
                print(f"cancelled={c.cancelled}")
            if p.kind == pb.Progress.OUTCOME:
                print(f"outcome={pb.TaskStatus.Name(p.status)}")
                print(f"error={p.error.code}:{p.error.grpc_code}")
        t = stub.GetTask(pb.GetTaskRequest(task_id=r.task_id), timeout=T)
        print(f"get-status={pb.TaskStatus.Name(t.status)}")
        print(f"get-error={t.error.code}")
        c = stub.CancelTask(pb.CancelTaskRequest(task_id=r.task_id), timeout=T)
        print(f"again-cancelled={c.cancelled}")
    elif cmd == "submit":
        kw = dict(payload=args[0].encode())
        for kv in args[1:]:
            k, v = kv.split("=", 1)
            kw[k] = float(v) if k == "timeout_secs" else int(v) if k == "max_retries" else v
        try:
            r = stub.SubmitTask(pb.SubmitTaskRequest(**kw), timeout=T)
            print(f"task={r.task_id}")
            print("status=OK")
        except grpc.RpcError as e:
            status_lines(e)
    elif cmd == "watch":
        # a task's progress to its end
        tokens = 0
        for p in stub.SubscribeProgress(pb.SubscribeProgressRequest(task_id=args[0]),
                                        timeout=T):
            if p.kind == pb.Progress.TOKEN:
                tokens += 1
            if p.kind == pb.Progress.OUTCOME:
                print(f"outcome={pb.TaskStatus.Name(p.status)}")
        print(f"tokens={tokens}")
    elif cmd == "get":
        try:
            t = stub.GetTask(pb.GetTaskRequest(task_id=args[0]), timeout=T)
            print(f"get-status={pb.TaskStatus.Name(t.status)}")
        except grpc.RpcError as e:
            status_lines(e)
    elif cmd == "raw":
        # METHOD HEX: a request of any bytes to any method
        f = ch.unary_unary(args[0], request_serializer=None, response_deserializer=None)
        try:
            f(bytes.fromhex(args[1]), timeout=T)
            print("status=OK")
        except grpc.RpcError as e:
            status_lines(e)
    elif cmd == "hcheck":
        h = hpg.HealthStub(ch)
        try:
            r = h.Check(hpb.HealthCheckRequest(service=args[0] if args else ""), timeout=T)
            print("health=" + hpb.HealthCheckResponse.ServingStatus.Name(r.status))
        except grpc.RpcError as e:
            status_lines(e)
    elif cmd == "hwatch":
        # prints each status as it comes, until the stream ends
        h = hpg.HealthStub(ch)
        try:
            for r in h.Watch(hpb.HealthCheckRequest(service=args[0] if args else ""),
                             timeout=T):
                print("health=" + hpb.HealthCheckResponse.ServingStatus.Name(r.status))
                sys.stdout.flush()
            print("status=OK")
        except grpc.RpcError as e:
            print(f"end={e.code().name}")
    elif cmd == "reflect":
        from google.protobuf import descriptor_pb2
        r = rpg.ServerReflectionStub(ch)
        reqs = [rpb.ServerReflectionRequest(list_services=""),
                rpb.ServerReflectionRequest(file_containing_symbol="porch.v1.Porch"),
                rpb.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
                rpb.ServerReflectionRequest(file_by_filename="porch.proto"),
                rpb.ServerReflectionRequest(file_containing_symbol="no.such.Thing")]
        for resp in r.ServerReflectionInfo(iter(reqs), timeout=T):
            which = resp.WhichOneof("message_response")
            if which == "list_services_response":
                print("services=" + ",".join(s.name for s in
                                             resp.list_services_response.service))
            elif which == "file_descriptor_response":
                for b in resp.file_descriptor_response.file_descriptor_proto:
                    fd = descriptor_pb2.FileDescriptorProto.FromString(b)
                    for sv in fd.service:
                        print(f"file={fd.name} service={fd.package}.{sv.name} methods=" +
                              ",".join(m.name for m in sv.method))
                    if not fd.service:
                        print(f"file={fd.name}")
            elif which == "error_response":
                print(f"error={resp.error_response.error_code}")
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
