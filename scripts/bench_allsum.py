"""The latency of one all_sum over the ranks mlx.launch started (what each of a sharded model's collectives costs).

mlx.launch -n 3 --backend ring -- $(which python) scripts/bench_allsum.py
"""

import time

import mlx.core as mx

group = mx.distributed.init()
x = mx.ones((1, 576))  # SmolLM2-135M's hidden state for one token
for runs in (10, 200):  # the first round warms up
    start = time.perf_counter()
    for _ in range(runs):
        mx.eval(mx.distributed.all_sum(x))
    seconds = (time.perf_counter() - start) / runs
if group.rank() == 0:
    print(f"{group.size()} ranks: {seconds * 1e3:.2f} ms per all_sum", flush=True)
