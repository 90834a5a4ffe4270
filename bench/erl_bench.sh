#!/bin/sh
# Distributed Erlang's one-sender figure for echo_bench: two nodes on
# loopback, one process on node a sends N messages of SIZE bytes to a
# registered process on node b, which counts them and answers when the
# last has come. Prints "msg/s X". Usage: erl_bench.sh SIZE N TMPDIR
# Every wait is bounded: each node is started with a run-time limit.
set -eu
size=$1 n=$2 dir=$3
cookie=bench$$
host=127.0.0.1
cd "$dir"
cat > erl_bench.erl <<'ERL'
-module(erl_bench).
-export([sink/0, run/1]).

sink() ->
    register(sink, self()),
    loop(0).

loop(C) ->
    receive
        {done, From} -> From ! {count, C}, loop(0);
        _ -> loop(C + 1)
    end.

run([BNode, SizeA, NA]) ->
    Size = list_to_integer(atom_to_list(SizeA)),
    N = list_to_integer(atom_to_list(NA)),
    Dest = {sink, BNode},
    true = net_kernel:connect_node(BNode),
    timer:sleep(200),
    Msg = binary:copy(<<"s">>, Size),
    T0 = erlang:monotonic_time(microsecond),
    send(Dest, Msg, N),
    Dest ! {done, self()},
    receive {count, C} ->
        Us = erlang:monotonic_time(microsecond) - T0,
        io:format("received ~p msg/s ~p~n", [C, C * 1000000 div max(Us, 1)])
    after 60000 -> io:format("timed out~n")
    end,
    halt().

send(_, _, 0) -> ok;
send(D, M, K) -> D ! M, send(D, M, K - 1).
ERL
erlc erl_bench.erl
timeout 90 erl -noshell -name "b$$@$host" -setcookie "$cookie" -eval 'erl_bench:sink().' &
bpid=$!
sleep 1
timeout 80 erl -noshell -name "a$$@$host" -setcookie "$cookie" -run erl_bench run "b$$@$host" "$size" "$n" || true
kill "$bpid" 2>/dev/null || true
wait "$bpid" 2>/dev/null || true
