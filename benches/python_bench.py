"""The operations of benches/benches/core.rs, on Python OSProfiler 4.4.0, timed with timeit.

Prints one line per operation: `<group>/<name> <nanoseconds per op>`.
"""
import timeit

from osprofiler import _utils as utils
from osprofiler import notifier, profiler

notifier.set(lambda payload: None)  # discard, like the Rust bench's driver


@profiler.trace("rpc")
def traced_fn(a, b):
    return a + len(b)


def per_op(stmt, number):
    best = min(timeit.repeat(stmt, number=number, repeat=5, globals=globals()))
    return best / number * 1e9


def main():
    profiler.clean()
    results = {}
    results["point/no_trace"] = per_op('profiler.start("db", {"statement": "SELECT 1"}); profiler.stop()', 200000)
    profiler.init("SECRET_KEY")
    results["point/enabled_start_stop"] = per_op('profiler.start("db"); profiler.stop()', 50000)
    results["macro/trace_fn_traced"] = per_op('traced_fn(1, "abc")', 50000)
    profiler.clean()
    results["macro/trace_fn_no_trace"] = per_op('traced_fn(1, "abc")', 100000)
    data = {"base_id": "11111111-1111-4111-8111-111111111111",
            "parent_id": "22222222-2222-4222-8222-222222222222"}
    globals()["data"] = data
    results["headers/pack"] = per_op('utils.signed_pack(data, "SECRET_KEY")', 50000)
    info, mac = utils.signed_pack(data, "old-key")
    globals().update(info=info, mac=mac)
    results["headers/verify_2_keys"] = per_op('utils.signed_unpack(info, mac, ["new-key", "old-key"])', 50000)
    for k, v in results.items():
        print(f"{k} {v:.1f}")


if __name__ == "__main__":
    main()
