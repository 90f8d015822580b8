"""The delivery gate: one atomic Redis call decides a whole page.

For each user, in the documented order: suppression, quiet hours, the plan cap, the caps of
the plan and of the policy (by channel and across channels), the run's budget, then the
workspace quota. A user who passes is *reserved* in the same call: the message goes into the
user's sent history (``names.sent_history_key``) and its price into the budget and quota.
The message's history member is the idempotency record of all of it: a retried or replayed
page finds the member and passes the user without counting again, and :meth:`release` (a
permanent failure) removes the member and gives the price back exactly once.

Quiet hours depend only on the clock and the user's zone, so they are worked out here in
Python and handed to the script as one code per user; the script still applies them in their
place in the order (a suppressed user is ``suppressed``, not deferred), and allow-listed
test users and transactional plans are exempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from activities.controls.quiet import DEFER, DROP, quiet_verdicts
from journeys.contracts.controls import Controls, SpendRule
from journeys.names import control_keys, sent_history_key

_CHECK = """
local now = tonumber(ARGV[1])
local keep_from = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local channel = ARGV[4]
local exempt = ARGV[5] == '1'
local cost = tonumber(ARGV[6])
local mode = ARGV[7]
local prefix, bid_prefix = ARGV[8], ARGV[9]
local priority = tonumber(ARGV[10])
local bids_from = now - tonumber(ARGV[11])
local recheck = ARGV[12] == '1'
local ncaps = tonumber(ARGV[13])
local i = 14
local caps, earliest = {}, math.min(now, bids_from)
for c = 1, ncaps do
  local cap = {max = tonumber(ARGV[i]), since = now - tonumber(ARGV[i + 1]),
               channel = ARGV[i + 2], plan = ARGV[i + 3], reason = ARGV[i + 4]}
  if cap.since < earliest then earliest = cap.since end
  caps[c] = cap
  i = i + 5
end
local spends, spent = {}, {}
for s = 1, 2 do
  if ARGV[i + 2] ~= '' then
    local rule = {key = KEYS[s], n = tonumber(ARGV[i]), c = tonumber(ARGV[i + 1]),
                  reason = ARGV[i + 2]}
    local v = redis.call('HMGET', rule.key, 'n', 'c')
    spends[#spends + 1] = rule
    spent[#spent + 1] = {n = tonumber(v[1]) or 0, c = tonumber(v[2]) or 0}
  end
  i = i + 3
end

-- The first cap the user would go over: its reason, or 'priority' when only pending bids
-- of plans that outrank this one (higher priority; equal and earlier) fill it. Bids count
-- only when confirming.
local function over_cap(hist, own_bid, own_score)
  local sent = redis.call('ZRANGEBYSCORE', hist, earliest, '+inf', 'WITHSCORES')
  for c = 1, ncaps do
    local cap = caps[c]
    if cap.channel == '' or cap.channel == channel then
      local confirmed, rivals = 0, 0
      for j = 1, #sent, 2 do
        local m, score = sent[j], tonumber(sent[j + 1])
        local kind = string.sub(m, 1, 1)
        if kind == 'm' and score >= cap.since then
          local _, _, ch, pl = string.find(m, '^m|([^|]*)|([^|]*)|')
          if (cap.channel == '' or cap.channel == ch) and (cap.plan == '' or cap.plan == pl) then
            confirmed = confirmed + 1
          end
        elseif kind == 'b' and mode == 'confirm' and score >= bids_from and m ~= own_bid then
          local _, _, p, ch, pl = string.find(m, '^b|(%d+)|([^|]*)|([^|]*)|')
          p = tonumber(p)
          local outranks = p > priority or (p == priority and
              (score < own_score or (score == own_score and m < own_bid)))
          if outranks and (cap.channel == '' or cap.channel == ch)
              and (cap.plan == '' or cap.plan == pl) then
            rivals = rivals + 1
          end
        end
      end
      if confirmed + 1 > cap.max then return cap.reason end
      if confirmed + rivals + 1 > cap.max then return 'priority' end
    end
  end
  return nil
end

local function over_spend()
  for s, rule in ipairs(spends) do
    if (rule.n and spent[s].n + 1 > rule.n) or (rule.c and spent[s].c + cost > rule.c + 1e-9) then
      return rule.reason
    end
  end
  return nil
end

-- the page's users in one argument, "entry,code;" each (code: '' or a quiet hours verdict):
-- a page of 1,000 as 2,000 arguments cost the client more to encode than the script to run
local users = {}
for entry, quiet in string.gmatch(ARGV[i], '(%d+),([%a_]*);') do
  users[#users + 1] = {entry, quiet}
end
-- nothing to count: a replayed page may add its members again (same member, no count), so
-- the per-user lookups that idempotence needs are skipped
local bare = mode == 'check' and ncaps == 0 and #spends == 0
local second = math.floor(now / 1000)
local out = {}
for u = 1, (#KEYS - 2) / 2 do
  local hist, sup = KEYS[1 + 2 * u], KEYS[2 + 2 * u]
  local entry, quiet = users[u][1], users[u][2]
  local member, own_bid = prefix .. entry, bid_prefix .. entry
  local verdict = 'ok'
  local bid_score = nil
  if mode ~= 'check' then bid_score = redis.call('ZSCORE', hist, own_bid) end
  local held = false
  if not bare then held = redis.call('ZSCORE', hist, member) end
  if held and not recheck then
    verdict = 'held'
  elseif mode == 'bid' and bid_score and not held then
    verdict = 'bid'
  else
    local allowed, suppressed = false, false
    for _, mark in ipairs(redis.call('SMEMBERS', sup)) do
      if mark == '+allow' then allowed = true
      elseif mark == '*' or mark == channel then suppressed = true end
    end
    local marketing = not allowed and not exempt
    if suppressed then
      verdict = 'suppressed'
      if held then  -- reserved by an earlier pass: suppressed since, so give it back
        redis.call('ZREM', hist, member)
        for s = 1, #spends do
          spent[s].n = math.max(0, spent[s].n - 1)
          spent[s].c = math.max(0, spent[s].c - cost)
        end
      end
    elseif quiet ~= '' and marketing then
      verdict = quiet  -- a reservation stays with the user it holds back
    elseif held then
      verdict = 'held'
    else
      if ncaps > 0 and marketing then
        verdict = over_cap(hist, own_bid, tonumber(bid_score) or now) or 'ok'
      end
      if verdict == 'ok' then verdict = over_spend() or 'ok' end
    end
    if mode == 'confirm' and bid_score then redis.call('ZREM', hist, own_bid) end
    if verdict == 'ok' then
      -- trimmed on one write in 16 (by user and second): enough to bound a busy user's
      -- history, at a sixteenth of the cost; reads look only inside their windows anyway
      if (u + second) % 16 == 0 then
        redis.call('ZREMRANGEBYSCORE', hist, '-inf', '(' .. keep_from)
      end
      if mode == 'bid' and marketing then
        redis.call('ZADD', hist, now, own_bid)
        verdict = 'bid'
      else
        redis.call('ZADD', hist, now, member)
        for s = 1, #spends do
          spent[s].n = spent[s].n + 1
          spent[s].c = spent[s].c + cost
        end
      end
      redis.call('PEXPIRE', hist, ttl)
    end
  end
  out[u] = verdict
end
for s, rule in ipairs(spends) do
  redis.call('HSET', rule.key, 'n', spent[s].n, 'c', tostring(spent[s].c))
end
return table.concat(out, ',')
"""

_RELEASE = """
local cost = tonumber(ARGV[1])
local released = 0
for u = 3, #KEYS do
  if redis.call('ZREM', KEYS[u], ARGV[u + 1]) == 1 then
    released = released + 1
    for s = 1, 2 do
      if ARGV[1 + s] == '1' then  -- never below zero: a quota reset meanwhile started afresh
        local v = redis.call('HMGET', KEYS[s], 'n', 'c')
        local n, c = tonumber(v[1]) or 0, tonumber(v[2]) or 0
        redis.call('HSET', KEYS[s], 'n', math.max(0, n - 1), 'c', tostring(math.max(0, c - cost)))
      end
    end
  end
end
return released
"""

_NO_KEY = "jny:none"
"""Stands in for a budget or quota the step does not have (the script never touches it)."""


ARBITRATION = "arbitration"
"""Why a bid waits: a capped send holds for the arbitration window before it confirms."""


@dataclass(frozen=True, slots=True)
class Deferral:
    """A user held back for now: until ``release``, for ``reason`` (``quiet_hours`` or
    ``arbitration``)."""

    release: datetime
    reason: str


@dataclass
class Verdict:
    """How a page came out of the gate."""

    passed: list[str] = field(default_factory=list)
    """Users reserved now or by an earlier execution of the page: send to them."""
    skipped: dict[str, str] = field(default_factory=dict)
    """User -> reason (``suppressed``, ``quiet_hours``, ``plan_cap``, ``channel_cap``,
    ``cap``, ``priority``, ``budget``, ``quota``)."""
    deferred: dict[str, Deferral] = field(default_factory=dict)
    """Users held: until quiet hours end for them, or until the arbitration window closes
    on their bid."""


def history_member(controls: Controls, *, channel: str, run_id: str, node: str, entry: int) -> str:
    """A message's member in its user's sent history: ``kind|channel|plan|run:node:entry``
    (kind ``m`` marketing, ``t`` transactional; the user is the key)."""
    return f"{_prefix(controls, channel=channel, run_id=run_id, node=node)}{entry}"


def _prefix(controls: Controls, *, channel: str, run_id: str, node: str) -> str:
    kind = "t" if controls.transactional else "m"
    return f"{kind}|{channel}|{controls.plan_id}|{run_id}:{node}:"


def _bid_prefix(controls: Controls, *, channel: str, run_id: str, node: str) -> str:
    """A bid's member is ``b|priority|channel|plan|run:node:entry``: rivals read the
    priority from it."""
    return f"b|{controls.priority:03d}|{channel}|{controls.plan_id}|{run_id}:{node}:"


class DeliveryGate:
    """Checks and reserves pages of users; built once per worker with the Redis client."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._check = redis.register_script(_CHECK)
        self._release = redis.register_script(_RELEASE)

    async def check(
        self,
        controls: Controls,
        *,
        channel: str,
        run_id: str,
        node: str,
        entries: Mapping[str, int],
        zones: Mapping[str, str | None],
        now: datetime,
        cost: float,
        confirm: bool = False,
        recheck: bool = False,
    ) -> Verdict:
        """Decide every user of ``entries`` (user -> entry) in one atomic call.

        Under arbitration (``controls.arbitration``) a first pass only *bids* for each
        user's slot (its users come back deferred for ``arbitration``) and the pass after
        the window ``confirm``s: a bid that plans of higher priority outbid is skipped for
        ``priority``. A user reserved by an earlier pass (a retry) passes at once unless
        ``recheck``: then suppression and quiet hours are checked again (a suppressed user
        gives the reservation back)."""
        users = list(entries)
        if not users:
            return Verdict()
        quiet = (
            quiet_verdicts(controls.quiet, now=now, zones={u: zones.get(u) for u in users})
            if controls.quiet is not None and not controls.transactional
            else {}
        )
        arbitrated = controls.arbitration > timedelta(0) and not controls.transactional
        mode = "confirm" if confirm else ("bid" if arbitrated else "check")
        now_ms = int(now.timestamp() * 1000)
        history_ms = int(controls.history.total_seconds() * 1000)
        where = {"channel": channel, "run_id": run_id, "node": node}
        args: list[str | int | float] = [
            now_ms,
            now_ms - history_ms,
            history_ms,
            channel,
            "1" if controls.transactional else "0",
            cost,
            mode,
            _prefix(controls, **where),
            _bid_prefix(controls, **where),
            controls.priority,
            # a bid stays a rival for two windows: its plan confirms within one, or died
            2 * int(controls.arbitration.total_seconds() * 1000),
            "1" if recheck else "0",
            len(controls.caps),
        ]
        for cap in controls.caps:
            per_ms = int(cap.per.total_seconds() * 1000)
            args += [cap.max, per_ms, cap.channel or "", cap.plan or "", cap.reason]
        args += _spend_args(controls.budget) + _spend_args(controls.quota)
        keys = [_key(controls.budget), _key(controls.quota)]
        for user in users:
            keys += control_keys(user)
        args.append("".join(f"{entries[u]},{quiet[u][0] if u in quiet else ''};" for u in users))
        raw = await self._check(keys=keys, args=args)
        codes = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(",")
        verdict = Verdict()
        window_ends = now + controls.arbitration
        for user, code in zip(users, codes, strict=True):
            if code in ("ok", "held"):
                verdict.passed.append(user)
            elif code == DEFER:
                release = quiet[user][1]
                assert release is not None  # deferred users always have a release time
                verdict.deferred[user] = Deferral(release, DROP)
            elif code == "bid":
                verdict.deferred[user] = Deferral(window_ends, ARBITRATION)
            else:
                verdict.skipped[user] = code
        return verdict

    async def release(
        self,
        controls: Controls,
        *,
        channel: str,
        run_id: str,
        node: str,
        entries: Sequence[tuple[str, int]],
        cost: float,
    ) -> int:
        """Give back the reservations of messages that failed for good; returns how many
        were still held (a second release of the same message gives nothing back)."""
        if not entries:
            return 0
        keys = [_key(controls.budget), _key(controls.quota)]
        args: list[str | float] = [
            cost,
            "0" if controls.budget is None else "1",
            "0" if controls.quota is None else "1",
        ]
        for user, entry in entries:
            keys.append(sent_history_key(user))
            args.append(
                history_member(controls, channel=channel, run_id=run_id, node=node, entry=entry)
            )
        return int(await self._release(keys=keys, args=args))


def _key(rule: SpendRule | None) -> str:
    return _NO_KEY if rule is None else rule.key


def _spend_args(rule: SpendRule | None) -> list[str | int | float]:
    if rule is None:
        return ["", "", ""]
    return [
        "" if rule.max_messages is None else rule.max_messages,
        "" if rule.max_cost is None else rule.max_cost,
        rule.reason,
    ]
