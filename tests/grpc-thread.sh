#!/bin/sh
# grpc-thread.sh -- tests/grpc.sh again with the grpc source's poller
# parameter at thread: gRPC polled by a poller thread that hands its
# completions to the loop, the bridge used when the loop cannot poll gRPC
# itself (a polling engine without an epoll set).
POLLER=thread
. "$top_srcdir/tests/grpc.sh"
