#!/bin/sh
# One-shot job (service `temporal-setup`): once the Temporal server answers, create the
# Journeys namespace and register the custom search attributes the workflows set.
#
# Idempotent: it creates only what is missing, then lists the namespace's attributes and
# fails unless every one is there, so a green exit means the workers can start.
#
# Environment:
#   TEMPORAL_ADDRESS             host:port of the frontend
#   TEMPORAL_NAMESPACE           namespace the workers and the ingest API use
#   NAMESPACE_RETENTION          closed-workflow retention for a new namespace (e.g. 168h)
#   JOURNEYS_SEARCH_ATTRIBUTES   "Name=Type Name=Type ..." (journeys/names.py SEARCH_ATTRIBUTES)
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${JOURNEYS_SEARCH_ATTRIBUTES:?}"
: "${NAMESPACE_RETENTION:=168h}"
ns=${TEMPORAL_NAMESPACE}
addr=${TEMPORAL_ADDRESS}

# retry ATTEMPTS COMMAND...: run COMMAND until it succeeds, 2 s apart.
retry() {
    attempts=$1
    shift
    n=1
    until "$@"; do
        if [ "${n}" -ge "${attempts}" ]; then
            echo "temporal-setup: gave up after ${attempts} attempts: $*" >&2
            return 1
        fi
        n=$((n + 1))
        sleep 2
    done
}

has_attribute() {
    temporal operator search-attribute list --address "${addr}" --namespace "${ns}" \
        | grep -qw -- "$1"
}

ensure_namespace() {
    temporal operator namespace describe --address "${addr}" --namespace "${ns}" >/dev/null \
        || temporal operator namespace create --address "${addr}" --namespace "${ns}" \
            --retention "${NAMESPACE_RETENTION}"
}

ensure_attribute() {
    name=$1
    type=$2
    has_attribute "${name}" && return 0
    # A concurrent run may have added it between the list and the create: look again.
    temporal operator search-attribute create --address "${addr}" --namespace "${ns}" \
        --name "${name}" --type "${type}" \
        || has_attribute "${name}"
}

echo "temporal-setup: waiting for ${addr}"
retry 60 temporal operator cluster health --address "${addr}"

echo "temporal-setup: namespace ${ns}"
# A new namespace takes a few seconds to reach every service's cache: retry around it.
retry 30 ensure_namespace

for pair in ${JOURNEYS_SEARCH_ATTRIBUTES}; do
    name=${pair%%=*}
    type=${pair#*=}
    echo "temporal-setup: search attribute ${name} (${type})"
    retry 30 ensure_attribute "${name}" "${type}"
done

missing=""
for pair in ${JOURNEYS_SEARCH_ATTRIBUTES}; do
    has_attribute "${pair%%=*}" || missing="${missing} ${pair%%=*}"
done
if [ -n "${missing}" ]; then
    echo "temporal-setup: still missing:${missing}" >&2
    exit 1
fi
echo "temporal-setup: done"
