#!/usr/bin/env bash
# Ensures the storage services that Cerulean's artifact tests talk to are running:
#
#   Azurite (Azure Blob emulator, npm `azurite@3.35.0`)  on 127.0.0.1:10000
#   moto    (S3-compatible server, PyPI `moto[server]`)   on 127.0.0.1:5000, with the test bucket
#
# Idempotent: a service that already answers is left alone; a missing one is installed (once, under
# $HOME/.cache/cerulean) and started in the background. Run it (`bash .ci/services.sh`) or source it
# (`source .ci/services.sh`, which also exports the CERULEAN_TEST_* variables below).
#
# Overridable:
#   CERULEAN_SERVICES_DIR     ($HOME/.cache/cerulean)  installs, logs and pid files
#   CERULEAN_TEST_AZURITE_URL (http://127.0.0.1:10000) Azurite's blob endpoint (host and port are used)
#   CERULEAN_TEST_S3_ENDPOINT (http://127.0.0.1:5000)  the S3 server's endpoint (host and port are used)
#   CERULEAN_TEST_S3_BUCKET   (cerulean-test)          the bucket created for the S3 tests
#
# Stop them with `bash .ci/services.sh stop` (kills only the processes this script started, by the
# pids it recorded).

_cerulean_services() {
    local dir="${CERULEAN_SERVICES_DIR:-$HOME/.cache/cerulean}"
    local azurite_url="${CERULEAN_TEST_AZURITE_URL:-http://127.0.0.1:10000}"
    local s3_endpoint="${CERULEAN_TEST_S3_ENDPOINT:-http://127.0.0.1:5000}"
    local s3_bucket="${CERULEAN_TEST_S3_BUCKET:-cerulean-test}"
    local azurite_dir="$dir/azurite"
    local moto_venv="$dir/moto-venv"
    local run_dir="$dir/services"
    mkdir -p "$run_dir"

    local azurite_hostport="${azurite_url#*://}"; azurite_hostport="${azurite_hostport%%/*}"
    local s3_hostport="${s3_endpoint#*://}"; s3_hostport="${s3_hostport%%/*}"

    _svc_log() { printf 'services: %s\n' "$*" >&2; }

    # Any HTTP answer (even 400/403) means the server is up.
    _svc_answers() {
        local code
        code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true)"
        [[ -n "$code" && "$code" != "000" ]]
    }

    _svc_wait() { # name url pidfile logfile
        local i
        for i in $(seq 1 120); do
            if _svc_answers "$2"; then
                _svc_log "$1 answers at $2"
                return 0
            fi
            if [[ -f "$3" ]] && ! kill -0 "$(cat "$3")" 2>/dev/null; then
                _svc_log "$1 exited while starting; last lines of $4:"
                tail -n 20 "$4" >&2 || true
                return 1
            fi
            sleep 0.5
        done
        _svc_log "$1 did not answer at $2 within 60 s; see $4"
        return 1
    }

    _svc_stop() { # name pidfile
        if [[ -f "$2" ]]; then
            local pid
            pid="$(cat "$2")"
            if kill -0 "$pid" 2>/dev/null; then
                kill "$pid" && _svc_log "stopped $1 (pid $pid)"
            else
                _svc_log "$1 (pid $pid) was not running"
            fi
            rm -f "$2"
        else
            _svc_log "$1: no pid file ($2); not started by this script"
        fi
    }

    if [[ "${1:-}" == "stop" ]]; then
        _svc_stop azurite "$run_dir/azurite.pid"
        _svc_stop moto "$run_dir/moto.pid"
        return 0
    fi

    # --- Azurite ---------------------------------------------------------------------------------
    if _svc_answers "$azurite_url/devstoreaccount1?comp=list"; then
        _svc_log "Azurite already answers at $azurite_url"
    else
        if [[ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]]; then
            command -v npm >/dev/null 2>&1 || { _svc_log "npm is required to install Azurite"; return 1; }
            _svc_log "installing azurite@3.35.0 into $azurite_dir"
            mkdir -p "$azurite_dir"
            (cd "$azurite_dir" && npm install --no-audit --no-fund --loglevel=error azurite@3.35.0 >&2) || return 1
        fi
        _svc_log "starting Azurite on $azurite_hostport (log: $run_dir/azurite.log)"
        nohup "$azurite_dir/node_modules/.bin/azurite-blob" \
            --blobHost "${azurite_hostport%:*}" --blobPort "${azurite_hostport##*:}" \
            --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry \
            >"$run_dir/azurite.log" 2>&1 </dev/null &
        echo $! >"$run_dir/azurite.pid"
        disown 2>/dev/null || true
        _svc_wait Azurite "$azurite_url/devstoreaccount1?comp=list" "$run_dir/azurite.pid" "$run_dir/azurite.log" || return 1
    fi

    # --- moto (S3) -------------------------------------------------------------------------------
    if [[ ! -x "$moto_venv/bin/python" ]] || ! "$moto_venv/bin/python" -c 'import moto.server, boto3' 2>/dev/null; then
        _svc_log "installing moto[server] into $moto_venv"
        "${PYTHON:-python3}" -m venv "$moto_venv" >&2 || return 1
        "$moto_venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' >&2 || return 1
    fi
    if _svc_answers "$s3_endpoint/"; then
        _svc_log "S3 server already answers at $s3_endpoint"
    else
        _svc_log "starting moto on $s3_hostport (log: $run_dir/moto.log)"
        nohup "$moto_venv/bin/python" -m moto.server -H "${s3_hostport%:*}" -p "${s3_hostport##*:}" \
            >"$run_dir/moto.log" 2>&1 </dev/null &
        echo $! >"$run_dir/moto.pid"
        disown 2>/dev/null || true
        _svc_wait moto "$s3_endpoint/" "$run_dir/moto.pid" "$run_dir/moto.log" || return 1
    fi
    # The bucket the S3 tests use (moto keeps everything in memory, so a restart loses it).
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
    "$moto_venv/bin/python" - "$s3_endpoint" "$s3_bucket" <<'PY' || return 1
import sys
import boto3
from botocore.exceptions import ClientError

endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
try:
    s3.create_bucket(Bucket=bucket)
    print(f"services: bucket {bucket} ready", file=sys.stderr)
except ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise
    print(f"services: bucket {bucket} exists", file=sys.stderr)
PY

    export CERULEAN_TEST_AZURITE_URL="$azurite_url"
    export CERULEAN_TEST_S3_ENDPOINT="$s3_endpoint"
    export CERULEAN_TEST_S3_BUCKET="$s3_bucket"
    _svc_log "ready. Stop them with: bash .ci/services.sh stop   (pid files in $run_dir)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    _cerulean_services "$@"
else
    _cerulean_services "$@"
fi
