#!/usr/bin/env python3
"""The peers' side of the comparison: SQLite, DuckDB and chDB on the data and questions of
`hearth-peers` (see run.sh).

Reads DIR/devices.csv, DIR/cycles.csv, DIR/params.json (devices and periods to ask about)
and DIR/hearth.json (hearth's figures and answers); for every peer: ingests the cycles in
committed batches, measures bytes per row, times C1-C3 over the same devices and D1-D7 and
the filtered scan; checks every peer's answers against hearth's and prints a Markdown table
(also written to DIR/results.md). Exits 1 when any answer differs.
"""

import argparse
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from fractions import Fraction

import chdb
import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

DAY_MS = 86_400_000
COLUMNS = [
    "program", "temp_setting_c", "spin_setting_rpm", "load_kg", "duration_s", "energy_wh",
    "water_l", "fill_time_s", "max_vibration_g", "detergent_ml", "error_code",
]
CYCLE_TYPES = {
    "ts": pa.int64(), "device_id": pa.string(), "program": pa.string(),
    "temp_setting_c": pa.int64(), "spin_setting_rpm": pa.int64(), "load_kg": pa.float64(),
    "duration_s": pa.int64(), "energy_wh": pa.int64(), "water_l": pa.float64(),
    "fill_time_s": pa.int64(), "max_vibration_g": pa.float64(), "detergent_ml": pa.int64(),
    "error_code": pa.string(),
}
DEVICE_TYPES = {
    "device_id": pa.string(), "model": pa.string(), "capacity_kg": pa.float64(),
    "firmware": pa.string(), "installed_at": pa.int64(), "lat": pa.float64(),
    "lon": pa.float64(), "postcode": pa.string(), "region": pa.string(), "segment": pa.string(),
}
PROGRAMS = [
    "cotton", "eco_40_60", "synthetics", "mixed", "wool", "delicates", "quick_15", "quick_30",
    "bedding", "sportswear", "rinse_spin", "drain",
]
C1_SQL = (
    "SELECT ts, " + ", ".join(COLUMNS) + " FROM cycles WHERE device_id = {dev} "
    "ORDER BY ts DESC LIMIT 10"
)


def read_csv(path, types):
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))


def dir_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


# ---------------------------------------------------------------------------------------
# Engines. Each gives: create(), insert(batch), finalize(), bytes(), rows(sql, params) and
# the dialect pieces the questions need. Parameters are written into the SQL as literals by
# `sql()` (every value is ours: serials and integers), so all three engines run the same
# text; SQLite and DuckDB get them bound instead, their cheapest path.


class Sqlite:
    name = "SQLite"

    def __init__(self, workdir, sync="FULL", layout="index", reuse=False):
        self.sync = sync
        self.layout = layout
        if layout == "clustered":
            self.name = "SQLite clustered"
        self.path = os.path.join(workdir, "sqlite.db")
        self.reused = reuse and os.path.exists(self.path)
        if self.reused:
            # The database an earlier run of the same data built (--reuse-sqlite): no ingest.
            self.con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.con.execute("PRAGMA cache_size=-1048576")
            return
        for p in (self.path, self.path + "-wal", self.path + "-shm"):
            if os.path.exists(p):
                os.remove(p)
        self.con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute(f"PRAGMA synchronous={sync}")
        self.con.execute("PRAGMA cache_size=-1048576")  # 1 GiB of page cache
        self.con.execute(
            "CREATE TABLE cycles (ts INTEGER NOT NULL, device_id TEXT NOT NULL, program TEXT, "
            "temp_setting_c INTEGER, spin_setting_rpm INTEGER, load_kg REAL, duration_s INTEGER, "
            "energy_wh INTEGER, water_l REAL, fill_time_s INTEGER, max_vibration_g REAL, "
            "detergent_ml INTEGER, error_code TEXT"
            # clustered: the rows themselves in (device_id, ts) order, no separate index.
            + (", PRIMARY KEY (device_id, ts)) WITHOUT ROWID" if layout == "clustered" else ")")
        )
        if layout != "clustered":
            self.con.execute("CREATE INDEX cycles_device_ts ON cycles (device_id, ts)")
        self.con.execute(
            "CREATE TABLE devices (device_id TEXT PRIMARY KEY, model TEXT, capacity_kg REAL, "
            "firmware TEXT, installed_at INTEGER, lat REAL, lon REAL, postcode TEXT, region TEXT, "
            "segment TEXT)"
        )
        self.insert_sql = "INSERT INTO cycles VALUES (" + ",".join("?" * 13) + ")"

    def version(self):
        return "SQLite " + sqlite3.sqlite_version + " (Python sqlite3)"

    def settings(self):
        layout = ("WITHOUT ROWID table, primary key (device_id, ts)" if self.layout == "clustered"
                  else "index on (device_id, ts)")
        return (f"WAL, synchronous={self.sync}, cache_size 1 GiB; {layout}; "
                "each batch one executemany in a transaction")

    def load_devices(self, devices):
        rows = list(zip(*[c.to_pylist() for c in devices.columns]))
        self.con.execute("BEGIN")
        self.con.executemany("INSERT INTO devices VALUES (" + ",".join("?" * 10) + ")", rows)
        self.con.execute("COMMIT")

    def prepare(self, batch):
        return list(zip(*[c.to_pylist() for c in batch.columns]))

    def insert(self, rows):
        self.con.execute("BEGIN")
        self.con.executemany(self.insert_sql, rows)
        self.con.execute("COMMIT")

    def finalize(self):
        self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def bytes(self):
        return sum(
            os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p)
        )

    def rows(self, sql, params):
        return self.con.execute(sql.format(**{k: "?" for k in params}), list(params.values())).fetchall()

    def month(self, ts):
        return f"strftime('%Y-%m', {ts} / 1000, 'unixepoch')"

    def week(self, ts):
        return f"(({ts} / {DAY_MS}) - (({ts} / {DAY_MS}) + 3) % 7)"

    def floor_int(self, x):
        return f"CAST({x} AS INTEGER)"  # truncation = floor for the non-negative values here

    def least(self, a, b):
        return f"min({a}, {b})"


class Duck:
    name = "DuckDB"

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, "duck-ingest.duckdb")
        self.final = os.path.join(workdir, "duck.duckdb")
        for p in (self.path, self.path + ".wal", self.final, self.final + ".wal"):
            if os.path.exists(p):
                os.remove(p)
        self.con = duckdb.connect(self.path)
        self.con.execute(
            "CREATE TABLE cycles (ts BIGINT NOT NULL, device_id VARCHAR NOT NULL, program VARCHAR, "
            "temp_setting_c INTEGER, spin_setting_rpm INTEGER, load_kg DOUBLE, duration_s INTEGER, "
            "energy_wh INTEGER, water_l DOUBLE, fill_time_s INTEGER, max_vibration_g DOUBLE, "
            "detergent_ml INTEGER, error_code VARCHAR)"
        )

    def version(self):
        return "DuckDB " + duckdb.__version__ + " (Python)"

    def settings(self):
        return ("each batch one INSERT ... SELECT from an Arrow table (autocommit); "
                "then rewritten ordered by (device_id, ts) into a fresh file")

    def load_devices(self, devices):
        self.devices = devices

    def prepare(self, batch):
        return batch

    def insert(self, batch):
        self.con.execute("INSERT INTO cycles SELECT * FROM batch")

    def finalize(self):
        # DuckDB has no clustered index: the obvious layout for per-device questions is the
        # table sorted by (device_id, ts), so that zone maps skip other devices' row groups.
        devices = self.devices  # noqa: F841 (read by the replacement scan below)
        self.con.execute(f"ATTACH '{self.final}' AS f")
        self.con.execute("CREATE TABLE f.cycles AS SELECT * FROM cycles ORDER BY device_id, ts")
        self.con.execute("CREATE TABLE f.devices AS SELECT * FROM devices")
        self.con.execute("DETACH f")
        self.con.close()
        os.remove(self.path)
        self.con = duckdb.connect(self.final)
        self.con.execute("CHECKPOINT")

    def bytes(self):
        return sum(os.path.getsize(p) for p in (self.final, self.final + ".wal") if os.path.exists(p))

    def rows(self, sql, params):
        return self.con.execute(sql.format(**{k: "?" for k in params}), list(params.values())).fetchall()

    def month(self, ts):
        return f"strftime(epoch_ms({ts}), '%Y-%m')"

    def week(self, ts):
        return f"(({ts} // {DAY_MS}) - (({ts} // {DAY_MS}) + 3) % 7)"

    def floor_int(self, x):
        return f"CAST(floor({x}) AS BIGINT)"

    def least(self, a, b):
        return f"least({a}, {b})"


class Chdb:
    name = "chDB"

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "chdb")
        if os.path.exists(self.path):
            shutil.rmtree(self.path)
        self.con = chdb.connect(self.path)
        self.cur = self.con.cursor()
        self.con.query(
            "CREATE TABLE cycles (ts Int64, device_id String, program LowCardinality(String), "
            "temp_setting_c UInt8, spin_setting_rpm UInt16, load_kg Float64, duration_s UInt32, "
            "energy_wh UInt16, water_l Float64, fill_time_s UInt16, max_vibration_g Float64, "
            "detergent_ml UInt16, error_code LowCardinality(String)) "
            "ENGINE = MergeTree ORDER BY (device_id, ts) "
            # Durable inserts, as the other engines' commits: without these a MergeTree
            # insert returns before its part is fsynced.
            "SETTINGS fsync_after_insert = 1, fsync_part_directory = 1"
        )
        self.con.query(
            "CREATE TABLE devices (device_id String, model LowCardinality(String), "
            "capacity_kg Float64, firmware LowCardinality(String), installed_at Int64, "
            "lat Float64, lon Float64, postcode LowCardinality(String), "
            "region LowCardinality(String), segment LowCardinality(String)) "
            "ENGINE = MergeTree ORDER BY device_id"
        )

    def version(self):
        v = self.con.query("SELECT version()", "TabSeparated").bytes().decode().strip()
        return f"chDB {chdb.__version__} (ClickHouse {v}, Python)"

    def settings(self):
        return ("MergeTree ORDER BY (device_id, ts), fsync_after_insert = 1, "
                "fsync_part_directory = 1; each batch one INSERT from an Arrow table")

    def load_devices(self, devices):
        self.con.query("INSERT INTO devices SELECT * FROM Python(devices)")

    def prepare(self, batch):
        return batch

    def insert(self, batch):
        self.con.query("INSERT INTO cycles SELECT * FROM Python(batch)")

    def finalize(self):
        self.con.query("OPTIMIZE TABLE cycles FINAL")

    def bytes(self):
        r = self.con.query(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase() "
            "AND table IN ('cycles', 'devices')", "TabSeparated"
        )
        return int(r.bytes().decode().strip())

    def rows(self, sql, params):
        lit = {k: (f"'{v}'" if isinstance(v, str) else str(v)) for k, v in params.items()}
        self.cur.execute(sql.format(**lit))
        return self.cur.fetchall()

    def month(self, ts):
        return f"formatDateTime(fromUnixTimestamp64Milli({ts}, 'UTC'), '%Y-%m')"

    def week(self, ts):
        return f"(intDiv({ts}, {DAY_MS}) - (intDiv({ts}, {DAY_MS}) + 3) % 7)"

    def floor_int(self, x):
        return f"toInt64(floor({x}))"

    def least(self, a, b):
        return f"least({a}, {b})"


ENGINES = {"sqlite": Sqlite, "duckdb": Duck, "chdb": Chdb}


# ---------------------------------------------------------------------------------------
# The questions. Each returns its answer in the canonical form `canon_*` below also gives
# hearth's, so that they compare directly.


class Questions:
    def __init__(self, e, params, devices):
        self.e = e
        self.p = params
        self.capacity = dict(zip(devices["device_id"].to_pylist(), devices["capacity_kg"].to_pylist()))
        self.model = dict(zip(devices["device_id"].to_pylist(), devices["model"].to_pylist()))
        per = params["period"]
        self.period = {"a": per["from_ms"], "b": per["to_ms"]}
        j = "FROM cycles c JOIN devices d ON c.device_id = d.device_id"
        w = "c.ts >= {a} AND c.ts < {b}"
        self.sql = {
            "C1": C1_SQL,
            "C2": "SELECT program, temp_setting_c, count(*), sum(load_kg), sum(energy_wh), "
                  "sum(water_l) FROM cycles WHERE device_id = {dev} AND ts >= {a} AND ts < {b} "
                  "GROUP BY program, temp_setting_c",
            "C3": f"SELECT {e.week('ts')} AS w, count(*), avg(fill_time_s), avg(max_vibration_g) "
                  "FROM cycles WHERE device_id = {dev} AND ts >= {a} AND ts < {b} "
                  "GROUP BY w ORDER BY w",
            "D1": f"SELECT c.program, d.region, {e.month('c.ts')} AS m, count(*) {j} WHERE {w} "
                  "GROUP BY c.program, d.region, m",
            "D2": f"SELECT d.capacity_kg, "
                  f"{e.least(e.floor_int('c.load_kg / 0.5'), 29)} AS kb, "
                  f"{e.least(e.floor_int('c.load_kg / d.capacity_kg * 100.0 / 10.0'), 10)} AS sb, "
                  f"count(*), sum(c.load_kg) {j} WHERE {w} GROUP BY d.capacity_kg, kb, sb",
            "D3": f"SELECT d.model, c.program, count(*) {j} WHERE {w} GROUP BY d.model, c.program",
            "D4": "SELECT program, temp_setting_c, count(*), avg(energy_wh), avg(water_l), "
                  "sum(energy_wh), sum(water_l) FROM cycles WHERE ts >= {a} AND ts < {b} "
                  "GROUP BY program, temp_setting_c",
            "D5": "SELECT d.segment, sum(CASE WHEN p.n < {light} THEN 1 ELSE 0 END), "
                  "sum(CASE WHEN p.n > {heavy} THEN 1 ELSE 0 END), count(*) "
                  "FROM (SELECT device_id, count(*) AS n FROM cycles WHERE ts >= {a} AND ts < {b} "
                  "GROUP BY device_id) p JOIN devices d ON p.device_id = d.device_id "
                  "GROUP BY d.segment",
            "D6": f"SELECT d.segment, count(*), sum(c.energy_wh), sum(c.energy_wh * c.energy_wh) "
                  f"{j} WHERE {w} GROUP BY d.segment",
            "D7": f"SELECT c.program, d.region, count(*) {j} WHERE {w} GROUP BY c.program, d.region",
            "scan": f"SELECT c.program, d.segment, count(*) {j} WHERE {w} "
                    "AND c.load_kg >= {lo} AND c.load_kg <= 30.0 GROUP BY c.program, d.segment",
        }
        self.medians = None

    def setup_c3(self):
        """The model's fleet median of fill time and vibration: precomputed once per peer
        (untimed, like hearth's all-time cells), from value counts per model."""
        out = {}
        for col in ("fill_time_s", "max_vibration_g"):
            rows = self.e.rows(
                f"SELECT d.model, c.{col}, count(*) FROM cycles c JOIN devices d "
                f"ON c.device_id = d.device_id GROUP BY d.model, c.{col}", {})
            per = {}
            for model, v, n in rows:
                per.setdefault(model, []).append((v, n))
            for model, vals in per.items():
                vals.sort()
                total = sum(n for _, n in vals)
                seen = 0
                for v, n in vals:
                    seen += n
                    if 2 * seen >= total:
                        out[(model, col)] = v
                        break
        self.medians = out

    def c1(self, dev):
        return self.e.rows(self.sql["C1"], {"dev": dev})

    def c2(self, dev):
        c = self.p["c2"]
        return self.c2_fold(dev, self.e.rows(self.sql["C2"], {"dev": dev, "a": c["from_ms"], "b": c["to_ms"]}))

    def c2_fold(self, dev, rows):
        c = self.p["c2"]
        n = sum(r[2] for r in rows)
        weeks = (c["to_ms"] - c["from_ms"]) // (7 * DAY_MS)
        programs, temps = {}, {}
        for r in rows:
            programs[r[0]] = programs.get(r[0], 0) + r[2]
            temps[str(r[1])] = temps.get(str(r[1]), 0) + r[2]
        load = sum(r[3] for r in rows)
        mean_load = load / n if n else None
        cap = self.capacity[dev]
        return {
            "cycles": n,
            "cycles_per_week": n / weeks,
            "mean_load_kg": mean_load,
            "load_share_of_capacity": mean_load / cap if mean_load is not None and cap > 0 else None,
            "programs": {k: (v, v / n) for k, v in programs.items()},
            "temperatures": {k: (v, v / n) for k, v in temps.items()},
            "energy_kwh": sum(r[4] for r in rows) / 1000.0,
            "water_l": sum(r[5] for r in rows),
        }

    def c3(self, dev):
        c = self.p["c3"]
        rows = self.e.rows(self.sql["C3"], {"dev": dev, "a": c["from_ms"], "b": c["to_ms"]})
        m = self.model[dev]
        return self.c3_fold(rows, self.medians.get((m, "fill_time_s")),
                            self.medians.get((m, "max_vibration_g")))

    @staticmethod
    def c3_fold(rows, fill_median, vib_median):
        return {
            "fill": [(w, n, f) for w, n, f, _ in rows],
            "vib": [(w, n, v) for w, n, _, v in rows],
            "fill_median": fill_median,
            "vib_median": vib_median,
        }

    def sqlite_in(self):
        """What `hearth-peers sqlite` needs: the SQL (SQLite's dialect, `?` placeholders),
        each device's model and each model's medians."""
        sql = {k: self.sql[k].format(dev="?", a="?", b="?") for k in ("C1", "C2", "C3")}
        models = sorted({m for (m, _) in self.medians})
        return {"sql": sql, "models": self.model,
                "medians": {m: [self.medians[(m, "fill_time_s")], self.medians[(m, "max_vibration_g")]]
                            for m in models}}

    def d1(self):
        return {(p, r, m): n for p, r, m, n in self.e.rows(self.sql["D1"], self.period)}

    def d2(self):
        out = {}
        for cap, kb, sb, n, load in self.e.rows(self.sql["D2"], self.period):
            g = out.setdefault(cap_label(cap), {"cycles": 0, "load": 0.0, "kg": [0] * 30, "share": [0] * 11})
            g["cycles"] += n
            g["load"] += load
            g["kg"][kb] += n
            g["share"][sb] += n
        for g in out.values():
            g["mean"] = g.pop("load") / g["cycles"]
            g["near_full"] = sum(g["share"][9:]) / g["cycles"]
        return out

    def d3(self):
        counts = {}
        for model, prog, n in self.e.rows(self.sql["D3"], self.period):
            counts.setdefault(model, {})[prog] = n
        out = []
        for model in sorted(counts):
            total = sum(counts[model].values())
            for p in PROGRAMS:
                c = counts[model].get(p, 0)
                if c / total < self.p["d3_max_share"]:
                    out.append((model, p, c))
        return sorted(out)

    def d4(self):
        return {(p, str(t)): (n, e, w, se, sw) for p, t, n, e, w, se, sw in self.e.rows(self.sql["D4"], self.period)}

    def d5(self):
        d = self.p["d5"]
        rows = self.e.rows(self.sql["D5"], {
            "light": d["light_below"] * d["weeks"], "heavy": d["heavy_above"] * d["weeks"],
            "a": d["from_ms"], "b": d["to_ms"]})
        return {s: (light, n - light - heavy, heavy) for s, light, heavy, n in rows}

    def d6(self):
        groups = {s: (n, sm, sq) for s, n, sm, sq in self.e.rows(self.sql["D6"], self.period)}
        return anova(groups)

    def d7(self):
        return chi_square({(p, r): n for p, r, n in self.e.rows(self.sql["D7"], self.period)})

    def scan(self):
        q = dict(self.period, lo=self.p["scan_min_load_kg"])
        return {(p, s): n for p, s, n in self.e.rows(self.sql["scan"], q)}


def cap_label(c):
    return f"{c:g}"


def anova(groups):
    """One-way ANOVA from per-group (n, sum, sum of squares) of integers, in exact
    rational arithmetic (as hearth's, from exact integer sums)."""
    groups = {s: (int(n), int(sm), int(sq)) for s, (n, sm, sq) in groups.items()}
    n = sum(g[0] for g in groups.values())
    total = sum(g[1] for g in groups.values())
    ss_total = sum(g[2] for g in groups.values()) - Fraction(total * total, n)
    ss_between = sum(Fraction(g[1] * g[1], g[0]) for g in groups.values()) - Fraction(total * total, n)
    ss_within = ss_total - ss_between
    k = len(groups)
    f = float((ss_between / (k - 1)) / (ss_within / (n - k)))
    return {"groups": {s: (g[0], g[1] / g[0]) for s, g in groups.items()},
            "f": f, "df": (k - 1, n - k)}


def chi_square(table):
    rows = sorted({r for r, _ in table})
    cols = sorted({c for _, c in table})
    rt = {r: sum(table.get((r, c), 0) for c in cols) for r in rows}
    ct = {c: sum(table.get((r, c), 0) for r in rows) for c in cols}
    n = sum(rt.values())
    stat = 0.0
    for r in rows:
        for c in cols:
            e = rt[r] * ct[c] / n
            if e > 0:
                stat += (table.get((r, c), 0) - e) ** 2 / e
    return {"observed": table, "statistic": stat, "df": (len(rows) - 1) * (len(cols) - 1)}


# ---------------------------------------------------------------------------------------
# hearth's answers in the same canonical forms.

def canon_hearth(h):
    a = h["answers"]
    out = {}
    out["C1"] = [[tuple([r["ts"]] + [v for _, v in r["values"]]) for r in rows] for rows in a["C1"]]
    out["C2"] = [{
        "cycles": u["cycles"], "cycles_per_week": u["cycles_per_week"],
        "mean_load_kg": u["mean_load_kg"], "load_share_of_capacity": u["load_share_of_capacity"],
        "programs": {s["name"]: (s["cycles"], s["share"]) for s in u["programs"]},
        "temperatures": {s["name"]: (s["cycles"], s["share"]) for s in u["temperatures"]},
        "energy_kwh": u["energy_kwh"], "water_l": u["water_l"],
    } for u in a["C2"]]
    out["C3"] = [{
        "fill": [(w["week_day"], w["cycles"], w["mean"]) for w in x["fill_time"]["weekly"]],
        "vib": [(w["week_day"], w["cycles"], w["mean"]) for w in x["vibration"]["weekly"]],
        "fill_median": x["fill_time"]["fleet_median"],
        "vib_median": x["vibration"]["fleet_median"],
    } for x in a["C3"]]
    out["D1"] = {(r["keys"][0], r["keys"][1], r["bucket"]): r["rows"] for r in a["D1"]["rows"]}
    out["D2"] = {c["capacity_kg"]: {
        "cycles": c["cycles"], "mean": c["mean_load_kg"],
        "kg": [n for _, n in c["load_kg_bins"]], "share": [n for _, n in c["share_bins"]],
        "near_full": c["share_at_least_90pct"]} for c in a["D2"]["by_capacity"]}
    out["D3"] = sorted((r["group"], r["program"], r["cycles"]) for r in a["D3"])
    out["D4"] = {(r["keys"][0], r["keys"][1]): (r["rows"], *r["values"]) for r in a["D4"]["rows"]}
    out["D5"] = {g["group"]: (g["light"], g["medium"], g["heavy"]) for g in a["D5"]["groups"]}
    out["D6"] = {"groups": {g["name"]: (g["n"], g["mean"]) for g in a["D6"]["groups"]},
                 "f": a["D6"]["f"], "df": (a["D6"]["df_between"], a["D6"]["df_within"])}
    d7 = a["D7"]
    out["D7"] = {"observed": {(r, c): n for r, row in zip(d7["rows"], d7["observed"])
                              for c, n in zip(d7["columns"], row) if n > 0},
                 "statistic": d7["statistic"], "df": d7["df"]}
    out["scan"] = {(r["keys"][0], r["keys"][1]): r["rows"] for r in a["scan"]["rows"]}
    return out


def same(a, b, path="", rel=1e-9):
    """Differences between two answers (numbers within `rel`), as a list of strings."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if a == b or abs(a - b) <= rel * max(abs(a), abs(b)):
            return []
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=repr):
            if k not in a or k not in b:
                out.append(f"{path}/{k!r}: only in {'hearth' if k in a else 'the peer'}")
            else:
                out += same(a[k], b[k], f"{path}/{k!r}", rel)
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += same(x, y, f"{path}[{i}]", rel)
        return out
    if isinstance(a, str) or isinstance(b, str):
        return [] if str(a) == str(b) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def c3_medians_in_bin(want, got):
    """hearth's fleet median is the midpoint of its histogram bin (2 s and 0.02 g wide, the
    preset's `model_health` cube): a peer's exact median in that bin counts as equal."""
    for k, width in (("fill_median", 2.0), ("vib_median", 0.02)):
        if want[k] is not None and got[k] is not None and abs(want[k] - got[k]) <= width / 2 + 1e-9:
            got[k] = want[k]


def c1_canon(rows):
    return [tuple(str(v) if i in (1, 2, 3, 11) else v for i, v in enumerate(r)) for r in rows]


# ---------------------------------------------------------------------------------------


def pct(sorted_us, p):
    return sorted_us[round((len(sorted_us) - 1) * p)]


def per_device(f, serials):
    answers = [f(s) for s in serials]  # untimed warm-up, keeps the answers
    t = []
    for s in serials:
        t0 = time.perf_counter_ns()
        f(s)
        t.append((time.perf_counter_ns() - t0) / 1e3)
    t.sort()
    return {"p50_us": pct(t, 0.5), "p99_us": pct(t, 0.99), "calls": len(t)}, answers


def repeat(f, runs):
    t0 = time.perf_counter()
    answer = f()  # warm-up, keeps the answer
    first = time.perf_counter() - t0
    # Slow questions (SQLite's fleet scans at S) get fewer runs: 3 over 2 s, 2 over 20 s.
    runs = runs if first < 2.0 else min(runs, 3) if first < 20.0 else min(runs, 2)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return {"median_ms": statistics.median(t) * 1e3, "runs": runs}, answer


def run_engine(key, args, params, devices, cycles, canon):
    e = (Sqlite(args.work, args.sqlite_sync, args.sqlite_layout, args.reuse_sqlite)
         if key == "sqlite" else ENGINES[key](args.work))
    log = lambda m: print(f"peers: {e.name}: {m}", file=sys.stderr, flush=True)  # noqa: E731
    n = cycles.num_rows
    if getattr(e, "reused", False):
        (count,) = e.rows("SELECT count(*) FROM cycles", {})[0]
        assert count == n, f"the reused SQLite database holds {count} rows, not {n}"
        rate, finalize = None, 0.0
        log("reused the database of an earlier run: ingest not measured")
    else:
        e.load_devices(devices)
        batch_rows = params["batch_rows"]
        spent = 0.0
        for start in range(0, n, batch_rows):
            data = e.prepare(cycles.slice(start, batch_rows))
            t0 = time.perf_counter()
            e.insert(data)
            spent += time.perf_counter() - t0
        t0 = time.perf_counter()
        e.finalize()
        finalize = time.perf_counter() - t0
        rate = n / spent
    nbytes = e.bytes()
    if rate is not None:
        log(f"ingested {n} rows: {rate:.0f} rows/s, finalize {finalize:.1f} s, "
            f"{nbytes / n:.2f} bytes/row")
    res = {"name": e.name, "version": e.version(), "settings": e.settings(),
           "ingest": {"rows_per_s": rate, "finalize_s": finalize},
           "bytes_per_row": nbytes / n, "figures": {}}
    q = Questions(e, params, devices)
    t0 = time.perf_counter()
    q.setup_c3()
    res["c3_setup_s"] = time.perf_counter() - t0
    serials = params["serials"]
    mismatches = []

    def check(name, got, want):
        d = same(want, got, name)
        if d:
            mismatches.extend(f"{e.name} {x}" for x in d[:20])
            if len(d) > 20:
                mismatches.append(f"{e.name} {name}: ... {len(d) - 20} more differences")

    fig, _ = per_device(lambda s: e.rows("SELECT 1", {}), serials)
    res["figures"]["floor"] = fig
    for name, f, conv in (("C1", q.c1, c1_canon), ("C2", q.c2, None), ("C3", q.c3, None)):
        fig, answers = per_device(f, serials)
        res["figures"][name] = fig
        log(f"{name}: p50 {fig['p50_us']:.1f} µs, p99 {fig['p99_us']:.1f} µs")
        if conv:
            answers = [conv(x) for x in answers]
        want = canon[name]
        if name == "C3":
            for w, g in zip(want, answers):
                c3_medians_in_bin(w, g)
        for i, (w, g) in enumerate(zip(want, answers)):
            check(f"{name}[{serials[i]}]", g, w)
    if key == "sqlite" and args.rust_bin:
        with open(os.path.join(args.dir, "sqlite-in.json"), "w") as f:
            json.dump(q.sqlite_in(), f)
        out = subprocess.run([args.rust_bin, "sqlite", "--dir", args.dir, "--db", e.path],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out)
        res["rust"] = {"version": r["version"], "figures": r["figures"]}
        for name in ("C1", "C2", "C3"):
            fig = r["figures"][name]
            log(f"{name} from Rust: p50 {fig['p50_us']:.1f} µs, p99 {fig['p99_us']:.1f} µs")
        for i, dev in enumerate(serials):
            check(f"C1 from Rust [{dev}]", c1_canon(r["answers"]["C1"][i]), canon["C1"][i])
            check(f"C2 from Rust [{dev}]", q.c2_fold(dev, r["answers"]["C2"][i]), canon["C2"][i])
            h = r["answers"]["C3"][i]
            g = q.c3_fold(h["weeks"], *(h["medians"] or (None, None)))
            c3_medians_in_bin(canon["C3"][i], g)
            check(f"C3 from Rust [{dev}]", g, canon["C3"][i])
    for name in ("D1", "D2", "D3", "D4", "D5", "D6", "D7", "scan"):
        if e.name in args.no_fleet.split(","):
            break
        fig, ans = repeat(getattr(q, name.lower()), args.runs)
        res["figures"][name] = fig
        log(f"{name}: median {fig['median_ms']:.2f} ms ({fig['runs']} runs)")
        check(name, ans, canon[name])
    res["mismatches"] = mismatches
    return res


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} vCPUs ({cpu}), {mem:.0f} GiB, Linux {platform.release()}"


def fmt(x, unit):
    if x is None:
        return "—"
    if unit == "rows/s":
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def table(params, h, peers, commit):
    # Columns: each peer from Python, and SQLite's C1-C3 from Rust where measured.
    cols = []
    for p in peers:
        cols.append((p["name"], p["ingest"]["rows_per_s"], p["bytes_per_row"], p["figures"]))
        if "rust" in p:
            cols.append((p["name"] + " from Rust", None, None, p["rust"]["figures"]))
    names = [c[0] for c in cols]
    lines = [
        f"{params['devices']:,} devices × {params['days']} days = {params['rows']:,} cycle rows "
        f"(seed {params['seed']}); hearth commit {commit}.",
        "",
        "| question | unit | hearth | " + " | ".join(names) + " | best peer ÷ hearth |",
        "|---|---|---:|" + "---:|" * len(names) + "---:|",
    ]

    def row(label, unit, hv, pv, higher_better=False):
        known = [v for v in pv if v is not None]
        ratio = ""
        if known and hv:
            best = max(known) if higher_better else min(known)
            r = hv / best if higher_better else best / hv
            ratio = f"{r:,.1f}×" if r >= 1 else f"{r:.2f}×"
        lines.append(f"| {label} | {unit} | {fmt(hv, unit)} | "
                     + " | ".join(fmt(v, unit) for v in pv) + f" | {ratio} |")

    row(f"ingest, committed batches of {params['batch_rows']:,} rows", "rows/s",
        h["ingest"]["rows_per_s"], [c[1] for c in cols], True)
    row("bytes per row on disk", "B", h["bytes"]["per_row"], [c[2] for c in cols])
    row("bytes per row, hearth's segments alone (no rollup files)", "B",
        h["bytes"]["segments_per_row"], [c[2] for c in cols])
    labels = {
        "C1": "C1 last 10 cycles, all columns", "C2": "C2 usage over 13 weeks",
        "C3": "C3 health inputs (weekly fill time, vibration; model median)",
    }
    for q, label in labels.items():
        for stat in ("p50_us", "p99_us"):
            row(f"{label}, {stat[:3]}", "µs", h["figures"][q][stat],
                [c[3][q][stat] if q in c[3] else None for c in cols])
    fl = {
        "D1": "D1 cycles by program × region × month, one year",
        "D2": "D2 load distribution per drum capacity",
        "D3": "D3 rare programs per model",
        "D4": "D4 energy and water by program × temperature",
        "D5": "D5 usage bands by segment",
        "D6": "D6 ANOVA inputs, energy per cycle across segments",
        "D7": "D7 chi-square inputs, program × region",
        "scan": "scan: program × segment where load_kg ≥ 5 (hearth: Plan::Scan)",
    }
    for q, label in fl.items():
        row(label, "ms", h["figures"][q]["median_ms"],
            [c[3][q]["median_ms"] if q in c[3] else None for c in cols])
    lines.append("| client floor: `SELECT 1` from Python, p50 | µs | — | "
                 + " | ".join(fmt(c[3]["floor"]["p50_us"], "µs") if "floor" in c[3] else "—"
                              for c in cols) + " | |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True, help="the directory hearth-peers wrote")
    ap.add_argument("--work", help="where the peers' databases go (default: DIR)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each fleet question")
    ap.add_argument("--engines", default="sqlite,duckdb,chdb")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--rust-bin", help="hearth-peers, to time SQLite's C1-C3 from Rust too")
    ap.add_argument("--reuse-sqlite", action="store_true",
                    help="query DIR's sqlite.db from an earlier run instead of ingesting again")
    ap.add_argument("--no-fleet", default="",
                    help="peers (by name, comma-separated) whose fleet questions are skipped")
    ap.add_argument("--sqlite-layout", default="index", choices=["index", "clustered"],
                    help="SQLite: a rowid table with an index on (device_id, ts), or a "
                         "WITHOUT ROWID table clustered on it")
    ap.add_argument("--sqlite-sync", default="FULL", choices=["FULL", "NORMAL"],
                    help="SQLite's synchronous setting (FULL: every commit durable)")
    args = ap.parse_args()
    args.work = args.work or args.dir
    params = json.load(open(os.path.join(args.dir, "params.json")))
    hearth = json.load(open(os.path.join(args.dir, "hearth.json")))
    canon = canon_hearth(hearth)
    t0 = time.perf_counter()
    devices = read_csv(os.path.join(args.dir, "devices.csv"), DEVICE_TYPES)
    cycles = read_csv(os.path.join(args.dir, "cycles.csv"), CYCLE_TYPES)
    assert cycles.num_rows == params["rows"], "cycles.csv does not hold hearth's rows"
    print(f"peers: read {cycles.num_rows} rows in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr, flush=True)
    peers = []
    for key in args.engines.split(","):
        peers.append(run_engine(key, args, params, devices, cycles, canon))
    lines = table(params, hearth, peers, args.commit)
    lines += ["", f"Machine: {machine()}.", "",
              "Versions and settings: hearth " + args.commit + " (Rust, in process; ingest "
              + hearth["ingest"]["sync"] + "); "
              + "; ".join(f"{p['version']}: {p['settings']}" for p in peers)
              + "".join(f"; {p['rust']['version']}: the same database and SQL, prepared once"
                        for p in peers if "rust" in p)
              + f"; Python {platform.python_version()}, pyarrow {pa.__version__}.", ""]
    lines.append("Per peer, untimed: C3's model medians computed once ("
                 + ", ".join(f"{p['name']} {p['c3_setup_s']:.1f} s" for p in peers)
                 + "); finalize after ingest (" + ", ".join(
                     f"{p['name']} {p['ingest']['finalize_s']:.1f} s" for p in peers)
                 + f"; hearth flush and compaction {hearth['ingest']['finalize_s']:.1f} s).")
    bad = [m for p in peers for m in p["mismatches"]]
    lines += ["", "Answers checked against hearth's: "
              + ("all equal." if not bad else f"{len(bad)} MISMATCHES (see stderr).")]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(args.dir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.dir, "peers.json"), "w") as f:
        json.dump(peers, f, indent=1, default=str)
    if bad:
        for m in bad:
            print("MISMATCH " + m, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
