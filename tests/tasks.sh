#!/bin/sh
# tasks.sh -- the task list and cancellation, and the models, of the http
# source: GET /v1/tasks in pages (limit, after, has_more) newest first,
# DELETE /v1/tasks/ID cancelling a task's model call (it ends failed:
# cancelled), 404 for an unknown task, 405 with Allow for other methods;
# GET /v1/models and /v1/models/ID, and check-model's 404 model_not_found.
# Times in the answers are short (elapsed_ms 68.23).
. "$top_srcdir/tests/lib.sh"

command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# pipeline FILE HTTP-PARAMS: an http source before an echo worker that
# takes 30 s a call (cancelled long before), and a quick one named "fast"
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="api" version="1">
  <worker name="model" plugin="echo">$(p delay-ms 30s)</worker>
  <worker name="fast" plugin="echo"/>
  <stage name="ingress" plugin="http">$(p listen 127.0.0.1:0)$2</stage>
  <stage name="inference" plugin="inference" worker="model" concurrency="2"/>
  <stage name="quick" plugin="inference" worker="fast"/>
  <stage name="reply" plugin="reply"/>
  <channel from="ingress" to="inference" capacity="64"/>
  <channel from="inference" to="quick"/>
  <channel from="quick" to="reply"/>
  <channel from="inference:error" to="reply"/>
  <channel from="quick:error" to="reply"/>
</pipeline>
XML
}

# start NAME FILE: porch in the background; sets pid and U (base URL)
start() {
	name=$1
	rm -f "$T/$name.port"
	"$PORCH" run --set "ingress.port-file=$T/$name.port" "$2" > "$T/$name.out" 2> "$T/$name.err" &
	pid=$!
	if ! wait_for 20 test -s "$T/$name.port"; then
		fail "$name: porch did not start: $(cat "$T/$name.err")"
		kill -KILL "$pid" 2> /dev/null
		return 1
	fi
	U="http://127.0.0.1:$(cat "$T/$name.port")"
}

stop() {
	kill -TERM "$pid"
	wait "$pid"
	expect_eq "$name: exit status after SIGTERM" "$?" 0
}

# req ARGS...: the status code; headers in $T/h, body in $T/b
req() {
	curl -s -S --max-time 20 -o "$T/b" -D "$T/h" -w '%{http_code}' "$@" 2> "$T/curl.err"
}

# task_id: the task_id in $T/b
task_id() {
	sed 's/.*"task_id":"\([^"]*\)".*/\1/' "$T/b"
}

# ids: the task_ids of the list in $T/b, in order, space separated
ids() {
	grep -o '"task_id":"[^"]*"' "$T/b" | sed 's/"task_id":"\(.*\)"/\1/' | tr '\n' ' '
}

pipeline "$T/api.xml" ""
if start api "$T/api.xml"; then
	# ---- the list: none yet
	expect_eq "empty list: status" "$(req "$U/v1/tasks")" 200
	expect_eq "empty list: body" "$(cat "$T/b")" \
	    '{"object":"list","data":[],"has_more":false,"first_id":null,"last_id":null}'

	# three tasks: two run (concurrency 2) for 30 s, the third waits
	for i in 1 2 3; do
		req "$U/v1/tasks" -d '{"name":"t'$i'","payload":"'"$(printf 'task %s' $i | base64)"'"}' > /dev/null
		eval "id$i=\$(task_id)"
	done
	# newest first, a page at a time
	expect_eq "list: status" "$(req "$U/v1/tasks")" 200
	expect_eq "list: newest first" "$(ids)" "$id3 $id2 $id1 "
	grep -q '"has_more":false' "$T/b" && ok || fail "list: has_more: $(cat "$T/b")"
	expect_eq "page 1: status" "$(req "$U/v1/tasks?limit=2")" 200
	expect_eq "page 1: tasks" "$(ids)" "$id3 $id2 "
	grep -q '^{"object":"list","data":\[{"task_id":"'"$id3"'","object":"task","status":"queued","created":"[0-9T:.Z-]*","attempts":0,"name":"t3"},' "$T/b" &&
	    ok || fail "page 1: the task object: $(cat "$T/b")"
	grep -q '"has_more":true,"first_id":"'"$id3"'","last_id":"'"$id2"'"}$' "$T/b" && ok ||
	    fail "page 1: has_more, first_id, last_id: $(cat "$T/b")"
	expect_eq "page 2: status" "$(req "$U/v1/tasks?limit=2&after=$id2")" 200
	expect_eq "page 2: tasks" "$(ids)" "$id1 "
	grep -q '"has_more":false,"first_id":"'"$id1"'","last_id":"'"$id1"'"}$' "$T/b" && ok ||
	    fail "page 2: has_more: $(cat "$T/b")"
	expect_eq "after the last: status" "$(req "$U/v1/tasks?after=$id1")" 200
	expect_eq "after the last: empty" "$(ids)" ""

	# ---- bad list parameters: exact answers
	for l in 0 101 x -1 ""; do
		expect_eq "limit=$l: status" "$(req "$U/v1/tasks?limit=$l")" 400
		expect_eq "limit=$l: body" "$(cat "$T/b")" \
		    '{"error":{"message":"'"'"'limit'"'"' must be an integer from 1 to 100","type":"invalid_request_error","param":"limit","code":"invalid_value"}}'
	done
	expect_eq "after=unknown: status" "$(req "$U/v1/tasks?after=task-nope")" 400
	expect_eq "after=unknown: body" "$(cat "$T/b")" \
	    '{"error":{"message":"'"'"'after'"'"' is no task kept: task-nope (finished tasks are kept for task-ttl only)","type":"invalid_request_error","param":"after","code":"invalid_value"}}'

	# ---- DELETE: the running task's model call is cancelled; it ends failed: cancelled
	expect_eq "delete running: status" "$(req -X DELETE "$U/v1/tasks/$id1")" 200
	grep -Eq '^\{"task_id":"'"$id1"'","object":"task","status":"(cancelling|failed)",' "$T/b" && ok ||
	    fail "delete running: the task object: $(cat "$T/b")"
	wait_for 10 sh -c "curl -s '$U/v1/tasks/$id1' | grep -q '\"status\":\"failed\"'" && ok ||
	    fail "delete running: not failed: $(curl -s "$U/v1/tasks/$id1")"
	req "$U/v1/tasks/$id1" > /dev/null
	grep -q '"error":{"message":"the task was cancelled (DELETE /v1/tasks/ID) (during attempt 1)","type":"[a-z_]*","code":"cancelled","status":499}' "$T/b" &&
	    ok || fail "delete running: failed: cancelled: $(cat "$T/b")"
	# short numbers: at most two decimals
	grep -Eq '"elapsed_ms":[0-9]+(\.[0-9]{1,2})?,' "$T/b" && ok || fail "elapsed_ms is not short: $(cat "$T/b")"
	grep -Eq '"timings":\{"inference":[0-9]+(\.[0-9]{1,2})?\}' "$T/b" && ok || fail "timings are not short: $(cat "$T/b")"
	# (it failed within 10 s: the worker's 30 s call was cancelled, not waited for)
	check_log() { grep -q "$2" "$T/api.err" && ok || fail "$1: $(cat "$T/api.err")"; }
	check_log "delete: logged" "task $id1: cancelled by DELETE /v1/tasks/$id1"
	# the third, queued behind it, now runs; cancel it too, and the second
	wait_for 10 sh -c "curl -s '$U/v1/tasks/$id3' | grep -q '\"status\":\"running\"'" && ok ||
	    fail "task 3 does not run: $(curl -s "$U/v1/tasks/$id3")"
	expect_eq "delete task 2: status" "$(req -X DELETE "$U/v1/tasks/$id2")" 200
	expect_eq "delete task 3: status" "$(req -X DELETE "$U/v1/tasks/$id3")" 200
	wait_for 10 sh -c "[ \"\$(curl -s '$U/v1/tasks' | grep -o '\"status\":\"failed\"' | wc -l)\" -eq 3 ]" && ok ||
	    fail "not every task failed: $(curl -s "$U/v1/tasks")"
	# a finished task: DELETE answers it as it is
	expect_eq "delete finished: status" "$(req -X DELETE "$U/v1/tasks/$id1")" 200
	grep -q '^{"task_id":"'"$id1"'","object":"task","status":"failed",' "$T/b" && ok ||
	    fail "delete finished: $(cat "$T/b")"
	# a task waiting in a channel: cancelled there (a quick one runs through)
	req "$U/v1/tasks" -d '{"payload":"'"$(printf 'a' | base64)"'"}' > /dev/null; ida=$(task_id)
	req "$U/v1/tasks" -d '{"payload":"'"$(printf 'b' | base64)"'"}' > /dev/null; idb=$(task_id)
	req "$U/v1/tasks" -d '{"payload":"'"$(printf 'c' | base64)"'"}' > /dev/null; idc=$(task_id)
	expect_eq "delete waiting: status" "$(req -X DELETE "$U/v1/tasks/$idc")" 200
	wait_for 10 sh -c "curl -s '$U/v1/tasks/$idc' | grep -q '\"code\":\"cancelled\"'" && ok ||
	    fail "delete waiting: not cancelled: $(curl -s "$U/v1/tasks/$idc")"
	req -X DELETE "$U/v1/tasks/$ida" > /dev/null
	req -X DELETE "$U/v1/tasks/$idb" > /dev/null

	# ---- unknown tasks and other methods
	expect_eq "delete unknown: status" "$(req -X DELETE "$U/v1/tasks/task-nope")" 404
	expect_eq "delete unknown: body" "$(cat "$T/b")" \
	    '{"error":{"message":"no such task: task-nope (finished tasks are kept for task-ttl only)","type":"invalid_request_error","param":null,"code":"task_not_found"}}'
	expect_eq "PUT a task: status" "$(req -X PUT "$U/v1/tasks/$id1")" 405
	grep -q '^Allow: GET, HEAD, DELETE' "$T/h" && ok || fail "PUT a task: Allow: $(cat "$T/h")"
	expect_eq "PUT a task: body" "$(cat "$T/b")" \
	    '{"error":{"message":"PUT is not allowed here; use GET, HEAD, DELETE","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}'
	expect_eq "DELETE the list: status" "$(req -X DELETE "$U/v1/tasks")" 405
	grep -q '^Allow: GET, HEAD, POST' "$T/h" && ok || fail "DELETE the list: Allow: $(cat "$T/h")"
	expect_eq "DELETE a task's events: status" "$(req -X DELETE "$U/v1/tasks/$id1/events")" 405
	grep -q '^Allow: GET, HEAD' "$T/h" && ok || fail "DELETE events: Allow: $(cat "$T/h")"

	# ---- models: what the workers serve
	expect_eq "models: status" "$(req "$U/v1/models")" 200
	expect_eq "models: body" "$(cat "$T/b")" \
	    '{"object":"list","data":[{"id":"model","object":"model","created":0,"owned_by":"porch"},{"id":"fast","object":"model","created":0,"owned_by":"porch"}]}'
	expect_eq "model fast: status" "$(req "$U/v1/models/fast")" 200
	expect_eq "model fast: body" "$(cat "$T/b")" '{"id":"fast","object":"model","created":0,"owned_by":"porch"}'
	expect_eq "model nope: status" "$(req "$U/v1/models/nope")" 404
	expect_eq "model nope: body" "$(cat "$T/b")" \
	    '{"error":{"message":"The model '"'"'nope'"'"' does not exist: no worker of this pipeline serves it (GET /v1/models lists those that do)","type":"invalid_request_error","param":null,"code":"model_not_found"}}'
	expect_eq "POST a model: status" "$(req -X POST "$U/v1/models/fast" -d x)" 405
	grep -q '^Allow: GET, HEAD' "$T/h" && ok || fail "POST a model: Allow: $(cat "$T/h")"
	# check-model is off by default: a model no worker serves is taken (the
	# 30 s worker: curl's time limit ends it)
	expect_eq "check-model off: an unknown model is taken" "$(req --max-time 1 "$U/v1/chat/completions" \
	    -d '{"model":"gpt-nope","messages":[{"role":"user","content":"hi"}]}')" 000
	stop
fi

# check-model on: a request naming a model no worker serves gets 404
pipeline "$T/check.xml" "$(p check-model yes)"
if start check "$T/check.xml"; then
	expect_eq "check-model: unknown model: status" "$(req "$U/v1/chat/completions" \
	    -d '{"model":"gpt-nope","messages":[{"role":"user","content":"hi"}]}')" 404
	expect_eq "check-model: unknown model: body" "$(cat "$T/b")" \
	    '{"error":{"message":"The model '"'"'gpt-nope'"'"' does not exist: no worker of this pipeline serves it (GET /v1/models lists those that do)","type":"invalid_request_error","param":null,"code":"model_not_found"}}'
	expect_eq "check-model: completions, unknown model" "$(req "$U/v1/completions" \
	    -d '{"model":"gpt-nope","prompt":"hi"}')" 404
	# a served model goes through (fast is the second stage's; the first's
	# worker takes 30 s: the request is cancelled by curl's time limit)
	expect_eq "check-model: a served model is taken" "$(req --max-time 1 "$U/v1/chat/completions" \
	    -d '{"model":"fast","messages":[{"role":"user","content":"hi"}]}')" 000
	grep -q 'Operation timed out\|timed out' "$T/curl.err" && ok || fail "check-model: served model: $(cat "$T/curl.err") $(cat "$T/b")"
	stop
fi

finish
