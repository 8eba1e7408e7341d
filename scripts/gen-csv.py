#!/usr/bin/env python3
"""Generates CSV input for the example jobs' throughput runs (deterministic for a seed).

  scripts/gen-csv.py orders DIR ROWS      # DIR/orders.csv and DIR/payments.csv, ROWS lines in all
  scripts/gen-csv.py purchases FILE ROWS  # FILE: user,ts_ms,amount

Timestamps rise by ~1 ms per row with up to 50 ms of disorder (run the jobs with
--out-of-order-ms 60 or more); order ids are unique, each order has one payment 0-300 ms
after it (half the rows each); purchases are spread over 100 users (about 10 per user and
second of event time).
"""
import random
import sys


def orders(directory, rows, seed=7):
    rng = random.Random(seed)
    n = rows // 2
    with open(f"{directory}/orders.csv", "w") as o, open(f"{directory}/payments.csv", "w") as p:
        o.write("order_id,ts_ms,amount\n")
        p.write("order_id,ts_ms,method\n")
        pending = []
        methods = ("card", "cash", "wire")
        for i in range(n):
            ts = i + rng.randrange(50)
            o.write(f"o{i},{ts},{rng.randrange(100000) / 100:.2f}\n")
            pending.append((ts + rng.randrange(300), i, methods[i % 3]))
            if len(pending) >= 4096:
                pending.sort()
                for pts, j, m in pending[:2048]:
                    p.write(f"o{j},{pts},{m}\n")
                del pending[:2048]
        pending.sort()
        for pts, j, m in pending:
            p.write(f"o{j},{pts},{m}\n")


def purchases(path, rows, seed=11):
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write("user,ts_ms,amount\n")
        for i in range(rows):
            f.write(f"u{rng.randrange(100)},{i + rng.randrange(50)},{rng.randrange(10000)}\n")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("orders", "purchases"):
        sys.exit(__doc__)
    {"orders": orders, "purchases": purchases}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
