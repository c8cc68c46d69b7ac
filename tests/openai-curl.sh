#!/bin/sh
# openai-curl.sh -- tests/openai.sh with the openai worker's libcurl
# transport (transport curl), which https:// upstreams use; openai.sh
# itself runs with the native one, auto's choice for http://.
OPENAI_TRANSPORT=curl
. "$top_srcdir/tests/openai.sh"
