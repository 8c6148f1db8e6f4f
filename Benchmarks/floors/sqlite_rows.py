#!/usr/bin/env python3
"""SQLite alone on this machine: the server's change-set schema, WAL, synchronous=FULL,
1,314-byte bodies, one transaction per batch (as the group commit writes), one thread.

Prints rows per second and CPU per row for batches of 64 and 1,000, on SQLite's default
4 KiB pages and on the 16 KiB pages the server creates its files with: the ceiling for the
server's single SQLite writer before any networking, parsing or validation.

    python3 Benchmarks/floors/sqlite_rows.py
"""
import os
import sqlite3
import tempfile
import time

SCHEMA = """
CREATE TABLE change_sets (account BLOB NOT NULL, cursor INTEGER NOT NULL, conversation BLOB NOT NULL,
  author BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL, body BLOB, PRIMARY KEY (account, cursor));
CREATE UNIQUE INDEX change_sets_by_chain ON change_sets (account, conversation, author, seq);
CREATE TABLE chains (account BLOB NOT NULL, conversation BLOB NOT NULL, author BLOB NOT NULL,
  seq INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (account, conversation, author)) WITHOUT ROWID;
"""
TOTAL = 100_000


def run(batch: int, page_size: int, directory: str) -> None:
    db = sqlite3.connect(os.path.join(directory, f"rows-{batch}-{page_size}.sqlite"), isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    account, conversation, author = os.urandom(16), os.urandom(16), os.urandom(32)
    body = os.urandom(1314)
    hashes = [os.urandom(32) for _ in range(1024)]
    wall, cpu = time.perf_counter(), os.times()
    written = 0
    while written < TOTAL:
        rows = [(account, written + i + 1, conversation, author, written + i + 1, hashes[(written + i) % 1024], body)
                for i in range(batch)]
        db.execute("BEGIN")
        db.executemany("INSERT INTO change_sets VALUES (?,?,?,?,?,?,?)", rows)
        db.execute("INSERT OR REPLACE INTO chains VALUES (?,?,?,?,?)", (account, conversation, author, written + batch, rows[-1][5]))
        db.execute("COMMIT")
        written += batch
    wall, after = time.perf_counter() - wall, os.times()
    user, system = after.user - cpu.user, after.system - cpu.system
    print(f"{page_size // 1024:2} KiB pages, batches of {batch:4}: {TOTAL / wall:,.0f} rows/s, CPU {1e6 * (user + system) / TOTAL:.1f} µs/row "
          f"(user {1e6 * user / TOTAL:.1f}, system {1e6 * system / TOTAL:.1f})")
    db.close()


with tempfile.TemporaryDirectory() as directory:
    for page_size in (4096, 16384):
        for batch in (64, 1000):
            run(batch, page_size, directory)
