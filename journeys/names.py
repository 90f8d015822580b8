"""Names shared between processes: task queues, Redis keys, search attributes.

Keeping them in one module means a key layout change is one diff, and the workers, the
ingest API and the tests can never disagree about where a thing lives. Every per-shard key
carries the shard's Redis Cluster hash tag (:func:`shard_tag`).
"""

from __future__ import annotations

from journeys.sharding import MAX_SHARDS, shard_of

# Temporal search attributes registered on the dev server and in tests (name -> type).
SEARCH_ATTRIBUTES: dict[str, str] = {
    "JourneyPlanId": "Keyword",
    "JourneyPlanVersion": "Int",
    "JourneyRunKey": "Keyword",
    "JourneyShard": "Int",
    "JourneyStatus": "Keyword",
    "JourneyKind": "Keyword",
}

KEY_PREFIX = "jny"


def run_workflow_id(plan_id: str, version: int, run_key: str) -> str:
    """``plan/{plan_id}/v{version}/{run_key}``: the PlanRunWorkflow id, also the run id."""
    return f"plan/{plan_id}/v{version}/{run_key}"


def parse_run_id(run_id: str) -> tuple[str, int] | None:
    """The plan id and version a run id names, or None when it is not one."""
    parts = run_id.split("/")
    if (
        len(parts) != 4
        or parts[0] != "plan"
        or not (parts[2][1:].isascii() and parts[2][1:].isdigit())
        or parts[2][0] != "v"
    ):
        return None
    return parts[1], int(parts[2][1:])


def shard_workflow_id(run_id: str, shard: int) -> str:
    """``{run_workflow_id}/shard/{k}``."""
    return f"{run_id}/shard/{shard}"


def shard_tag(shard: int) -> str:
    """``{s7}``: the hash tag of shard 7. Every key of shard k (any audience, any run) shares
    one Redis Cluster slot, so set operations between audiences and the copy of an audience
    into a run stay server-side (ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE) even on a cluster."""
    return f"{{s{shard}}}"


def audience_shard_key(audience: str, shard: int) -> str:
    """Sorted set of one shard of a saved (named) audience; kept after runs end."""
    return f"{KEY_PREFIX}:aud:{audience}:{shard_tag(shard)}"


def audience_staging_key(audience: str, shard: int) -> str:
    """Where an upload writes before it atomically RENAMEs over the saved shard."""
    return f"{audience_shard_key(audience, shard)}:staging"


def run_shard_prefix(run_id: str, shard: int) -> str:
    """Prefix of every working key of one shard of one run (deleted when the run ends)."""
    return f"{KEY_PREFIX}:run:{run_id}:{shard_tag(shard)}"


def run_keys_pattern(run_id: str) -> str:
    """SCAN pattern matching every working key of a run, all shards (glob chars escaped)."""
    escaped = "".join(f"\\{c}" if c in "[]?*\\" else c for c in f"{KEY_PREFIX}:run:{run_id}:")
    return f"{escaped}*"


def run_state_key(run_id: str, shard: int) -> str:
    """Set when a run's shard is set up, before anything else of it is written; read after
    every page of it. Gone while the run lives means Redis lost the run's data."""
    return f"{run_shard_prefix(run_id, shard)}:live"


def run_audience_key(run_id: str, shard: int) -> str:
    """The run's own copy of its audience for one shard: the entry cohort."""
    return f"{run_shard_prefix(run_id, shard)}:aud"


def cohort_key(run_id: str, shard: int, cohort: str) -> str:
    """A sub-cohort of one shard (e.g. ``send.failed.1``); deterministic, so retries rewrite it."""
    return f"{run_shard_prefix(run_id, shard)}:c:{cohort}"


def exited_key(run_id: str, shard: int) -> str:
    """Users of one shard whom an exit criterion removed; every node skips them."""
    return f"{run_shard_prefix(run_id, shard)}:exited"


def signal_hold_key(run_id: str, shard: int) -> str:
    """Set while one shard continues as new: the ingest API holds that shard's signals."""
    return f"{run_shard_prefix(run_id, shard)}:hold"


def signal_passing_key(run_id: str, shard: int) -> str:
    """Sorted set token -> ms of the ingest signals to one shard that passed its hold."""
    return f"{run_shard_prefix(run_id, shard)}:passing"


def pages_done_key(run_id: str, shard: int, cohort: str) -> str:
    """Hash page -> result of a routing node's pages already written (retries reuse it)."""
    return f"{cohort_key(run_id, shard, cohort)}:pages"


def entry_marks_key(run_id: str, shard: int) -> str:
    """Hash batch -> result of a shard's admitted entry batches (retries reuse it)."""
    return f"{run_shard_prefix(run_id, shard)}:entries"


def dry_samples_key(run_id: str) -> str:
    """Hash node -> one message a dry run rendered there (JSON); read by ``journeys launch
    --dry-run`` after the run's keys are gone, so it outlives them (and expires)."""
    return f"{KEY_PREFIX}:dry:{{{run_id}}}"


def daily_entries_key(run_id: str, day: str) -> str:
    """Entries admitted into a run on ``day`` (plan zone), for the daily limit. Hash-tagged by
    run, so the counter and the per-batch marks beside it share a cluster slot; they expire
    on their own."""
    return f"{KEY_PREFIX}:day:{{{run_id}}}:{day}"


def redis_epoch_key(epoch: str) -> str:
    """Present while Redis holds the data of epoch ``epoch`` (recorded in PostgreSQL)."""
    return f"{KEY_PREFIX}:epoch:{epoch}"


def listeners_key(event: str) -> str:
    """Hash run id -> shard count of the running journeys listening for ``event``."""
    return f"{KEY_PREFIX}:listen:{event}"


def rate_key(scope: str) -> str:
    """Token-bucket state (hash: tokens, stamp, rate, burst) for a run or a channel."""
    return f"{KEY_PREFIX}:rate:{{{scope}}}"


def tag_value_key(tag: str, version: int, user_id: str) -> str:
    """A computed tag's cached value for one user (JSON text; expires after the tag's cache
    TTL). The live version is in the key, so publishing a tag retires its cached values.
    Single-key reads and writes only, so any slot will do on a cluster."""
    return f"{KEY_PREFIX}:tagv:{tag}:v{version}:{user_id}"


def control_tag(user_id: str) -> str:
    """``{c517}``: the hash tag of a user's delivery-control keys, by the user's bucket
    ``mmh3(user_id) & (MAX_SHARDS - 1)``. A plan's shard is ``mmh3 & (shards - 1)``, so
    every shard of any plan covers whole buckets; a cluster would check a page bucket by
    bucket."""
    return f"{{c{control_bucket(user_id)}}}"


def control_bucket(user_id: str) -> int:
    """The user's control bucket (0..1023)."""
    return shard_of(user_id, MAX_SHARDS)


def sent_history_key(user_id: str) -> str:
    """Sorted set of the messages a user was sent (or has reserved), scored by send time in
    ms; read by caps, plan caps, budgets and quotas, trimmed to the policy's history."""
    return control_keys(user_id)[0]


def suppression_key(user_id: str) -> str:
    """Set of what a user is suppressed on: channel names, ``*`` (every channel), and
    ``+allow`` for a test user whom caps and quiet hours never stop."""
    return control_keys(user_id)[1]


def control_keys(user_id: str) -> tuple[str, str]:
    """(sent history, suppression) keys of a user, hashing the user once."""
    tag = control_tag(user_id)
    return (
        f"{KEY_PREFIX}:sent:{tag}:{user_id}",
        f"{KEY_PREFIX}:sup:{tag}:{user_id}",
    )


def budget_key(run_id: str, channel: str) -> str:
    """Hash (``n`` messages, ``c`` cost) a run has spent of its budget on ``channel``."""
    return f"{KEY_PREFIX}:budget:{{{run_id}}}:{channel}"


def quota_key(channel: str) -> str:
    """Hash (``n`` messages, ``c`` cost) spent of the workspace quota of ``channel``."""
    return f"{KEY_PREFIX}:quota:{{{channel}}}"


def channel_rate_scope(channel: str) -> str:
    """The token-bucket scope of a channel's own rate, shared by every plan and worker."""
    return f"channel:{channel}"
