"""``python -m bench.window_layout``: Redis CPU per reading for two window-hash layouts.

Both fold 1m and 15m statistics of 100,000 readings (250 per script call) into region hashes:
- ``field-per-stat``: one hash field per meter and statistic (HINCRBY, HGET/HSET for min/max);
- ``packed``: one field per meter holding all statistics packed with Lua's struct library, as
  segs.services.spine.windows_store does.
Redis's own CPU (INFO cpu) is what is compared, since Redis shares the machine's two cores.
It uses Redis database 13 and empties it.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable

import redis

FIELD_PER_STAT = """
for i = 1, #ARGV, 9 do
  local k = KEYS[tonumber(ARGV[i])]
  local m = ARGV[i + 1]
  redis.call('HINCRBY', k, m .. '|n', ARGV[i + 2])
  redis.call('HINCRBY', k, m .. '|p', ARGV[i + 3])
  local cur = redis.call('HGET', k, m .. '|lo')
  if (not cur) or tonumber(ARGV[i + 4]) < tonumber(cur) then
    redis.call('HSET', k, m .. '|lo', ARGV[i + 4])
  end
  cur = redis.call('HGET', k, m .. '|hi')
  if (not cur) or tonumber(ARGV[i + 5]) > tonumber(cur) then
    redis.call('HSET', k, m .. '|hi', ARGV[i + 5])
  end
  redis.call('HINCRBY', k, m .. '|e', ARGV[i + 6])
  redis.call('HINCRBY', k, m .. '|v', ARGV[i + 7])
  redis.call('HINCRBY', k, m .. '|vn', ARGV[i + 8])
end
return 1
"""

PACKED = """
local fmt = '<i4i8i8i8i8i8i4i8'
for i = 1, #ARGV, 3 do
  local k = KEYS[tonumber(ARGV[i])]
  local m = ARGV[i + 1]
  local n, p, lo, hi, e, v, vn, t = struct.unpack(fmt, ARGV[i + 2])
  local cur = redis.call('HGET', k, m)
  if cur then
    local n2, p2, lo2, hi2, e2, v2, vn2, t2 = struct.unpack(fmt, cur)
    n = n + n2; p = p + p2; e = e + e2; v = v + v2; vn = vn + vn2
    if lo2 < lo then lo = lo2 end
    if hi2 > hi then hi = hi2 end
    if t2 > t then t = t2 end
  end
  redis.call('HSET', k, m, struct.pack(fmt, n, p, lo, hi, e, v, vn, t))
end
return 1
"""

PACKED_STATS = struct.Struct("<iqqqqqiq")
BATCHES = 400
PER_BATCH = 250
METERS = 100_000


def _args_field_per_stat(meter: str, power: int) -> list[object]:
    return [meter, 1, power, power, power, power // 360, 230_000_000, 1]


def _args_packed(meter: str, power: int) -> list[object]:
    return [meter, PACKED_STATS.pack(1, power, power, power, power // 360, 230_000_000, 1, 0)]


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(
    client: redis.Redis, script: str, entry: Callable[[str, int], list[object]]
) -> tuple[float, float]:
    """Return (Redis CPU µs per reading, readings/s through one client)."""
    client.flushdb()
    fold = client.register_script(script)
    rng = random.Random(7)
    cpu_before = _redis_cpu(client)
    started = time.perf_counter()
    for batch in range(BATCHES):
        # A new 1m window every 24 batches (6,000 readings), 15m every 360.
        keys = [f"w:1m:R:{batch // 24}", f"w:15m:R:{batch // 360}"]
        args: list[object] = []
        for offset in range(PER_BATCH):
            meter = f"MTR-{(batch * PER_BATCH + offset) % METERS:08d}"
            power = rng.randint(1_000_000, 8_000_000)
            for window in (1, 2):
                args.append(window)
                args.extend(entry(meter, power))
        fold(keys=keys, args=args)
    elapsed = time.perf_counter() - started
    readings = BATCHES * PER_BATCH
    return (_redis_cpu(client) - cpu_before) / readings * 1e6, readings / elapsed


def main() -> None:
    client = redis.Redis(db=13)
    for name, script, entry in (
        ("field-per-stat", FIELD_PER_STAT, _args_field_per_stat),
        ("packed", PACKED, _args_packed),
    ):
        cpu_us, rate = measure(client, script, entry)
        print(f"{name:<15} Redis CPU {cpu_us:5.1f} µs/reading   {rate:8,.0f} readings/s")
    client.flushdb()


if __name__ == "__main__":
    main()
