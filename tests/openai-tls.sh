#!/bin/sh
# openai-tls.sh -- the openai worker verifies https upstreams.
#
# A TLS front (Debian's nginx, proxy_pass) with a self-signed certificate
# made here by openssl, for CN and subjectAltName IP 127.0.0.1, in front of
# tests/fake-upstream.  Without ca-file the call fails as transport, naming
# the certificate problem; with the certificate as ca-file it succeeds; a
# name the certificate does not hold fails even with ca-file; a ca-file
# that does not exist is a load-time error.  Skipped (77) without openssl
# or nginx.
. "$top_srcdir/tests/lib.sh"

: "${top_builddir:=$top_srcdir}"
fake=$top_builddir/tests/fake-upstream
[ -x "$fake" ] || { echo "tests/fake-upstream is not built: skipped"; exit 77; }
command -v openssl > /dev/null || { echo "openssl is not installed: skipped"; exit 77; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is not installed: skipped"; exit 77; }
command -v curl > /dev/null || { echo "curl is not installed: skipped"; exit 77; }

# libcurl honours proxy variables: the front is reached directly
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT

# ---- the fake upstream, plain HTTP on a port it picks -----------------------------
"$fake" -p "$T/up.port" -t 600 &
pids="$pids $!"
wait_for 10 test -s "$T/up.port" || { fail "the fake upstream did not start"; finish; }
up=$(cat "$T/up.port")

# ---- a self-signed certificate for 127.0.0.1 --------------------------------------
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 > "$T/openssl.log" 2>&1; then
	fail "openssl could not make a certificate: $(cat "$T/openssl.log")"
	finish
fi

# ---- nginx in front of it, with TLS, on a free port tried at random -----------------
mkdir "$T/nginx"
# tls_up: the front answers (any status) over TLS, certificate unchecked
tls_up() {
	curl -s -k -o /dev/null --max-time 2 "https://127.0.0.1:$tport/"
}
# gone: the nginx just started has exited (its port was taken)
gone() {
	! kill -0 "$npid" 2> /dev/null
}
up_or_gone() {
	tls_up || gone
}
tport=
for try in 1 2 3 4 5 6 7 8 9 10; do
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
	cat > "$T/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
error_log $T/nginx/error.log;
pid $T/nginx/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $T/nginx/body;
	proxy_temp_path $T/nginx/proxy;
	fastcgi_temp_path $T/nginx/fastcgi;
	uwsgi_temp_path $T/nginx/uwsgi;
	scgi_temp_path $T/nginx/scgi;
	server {
		listen 127.0.0.1:$port ssl;
		ssl_certificate $T/cert.pem;
		ssl_certificate_key $T/key.pem;
		location / {
			proxy_pass http://127.0.0.1:$up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
CONF
	"$NGINX" -p "$T/nginx" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" \
	    > "$T/nginx/out" 2>&1 &
	npid=$!
	tport=$port
	if wait_for 10 up_or_gone && ! gone; then
		pids="$pids $npid"
		break
	fi
	kill "$npid" 2> /dev/null
	wait "$npid" 2> /dev/null
	tport=
done
if [ -z "$tport" ]; then
	fail "nginx did not start: $(cat "$T/nginx/error.log" "$T/nginx/out" 2>/dev/null)"
	finish
fi

p() {
	printf '<param name="%s">%s</param>' "$1" "$2"
}

# pipeline FILE BASE-URL WORKER-PARAMS: stdin -> inference -> stdout
pipeline() {
	cat > "$1" <<XML
<?xml version="1.0"?>
<pipeline name="tls" version="1">
  <worker name="model" plugin="openai">$(p base-url "$2")$(p read-timeout 5s)$3</worker>
  <stage name="input" plugin="stdin"/>
  <stage name="infer" plugin="inference" worker="model">$(p retries 0)</stage>
  <stage name="output" plugin="stdout">$(p stream false)</stage>
  <stage name="dlq" plugin="null"/>
  <channel from="input" to="infer"/>
  <channel from="infer" to="output"/>
  <channel from="infer:error" to="dlq"/>
</pipeline>
XML
}

# run NAME: one request through $T/NAME.xml; $status, $T/NAME.out, $T/NAME.err
run() {
	printf '{"text": "hello tls", "meta": {"model": "ok"}}\n' |
	    "$PORCH" run -q "$T/$1.xml" > "$T/$1.out" 2> "$T/$1.err"
	status=$?
}

# 1. self-signed, no ca-file: refused, as transport, saying why
pipeline "$T/noca.xml" "https://127.0.0.1:$tport/v1" ""
run noca
expect_eq "no ca-file: exit status" "$status" 0
expect_eq "no ca-file: no answer" "$(cat "$T/noca.out")" ""
grep -q "^[^ ]* [a-z]* porch: stage [^ ]*: stdin:1: request 1 (session stdin) failed: transport: SSL certificate problem: self.signed certificate" \
    "$T/noca.err" && ok || fail "no ca-file: $(cat "$T/noca.err")"

# 2. the certificate as ca-file: verified, answered
pipeline "$T/ca.xml" "https://127.0.0.1:$tport/v1" "$(p ca-file "$T/cert.pem")"
run ca
expect_eq "ca-file: exit status" "$status" 0
expect_eq "ca-file: answer" "$(cat "$T/ca.out")" "$(printf 'stdin\tyou said: hello tls')"
expect_eq "ca-file: nothing on stderr" "$(cat "$T/ca.err")" ""

# 3. ca-file, but a name the certificate does not hold: refused
pipeline "$T/name.xml" "https://localhost:$tport/v1" "$(p ca-file "$T/cert.pem")"
run name
grep -q "^[^ ]* [a-z]* porch: stage [^ ]*: stdin:1: request 1 (session stdin) failed: transport: .*\(subject name\|does not match\|match target host\)" \
    "$T/name.err" && ok || fail "another name: $(cat "$T/name.err")"

# 4. a ca-file that does not exist: the pipeline does not load
pipeline "$T/missing.xml" "https://127.0.0.1:$tport/v1" "$(p ca-file "$T/no-such.pem")"
"$PORCH" check "$T/missing.xml" 2> "$T/missing.err"
expect_eq "missing ca-file: check's exit status" "$?" 2
grep -q "error: worker 'model' (plugin openai): '$T/no-such.pem': No such file or directory" \
    "$T/missing.err" && ok || fail "missing ca-file: $(cat "$T/missing.err")"

finish
