//! Drives the real `hearth` binary in a temporary directory, as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary working directory and the binary.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).expect("write fixture");
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .current_dir(self.tmp.path())
            .args(args)
            .output()
            .expect("run hearth");
        Run::from(out, args)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output, args: &[&str]) -> Run {
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ hearth {}\n[exit {:?}]\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "expected success; stderr: {}",
            self.stderr
        );
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).expect("stdout is JSON")
    }
}

const DEVICES: &str = "\
device_id,model,capacity_kg,firmware,installed_at,lat,lon,postcode,region,segment
WM-00000001,AquaLine 8,8,1.2.0,2024-05-01T10:00:00Z,51.5,-0.12,SW1A,,
WM-00000002,AquaLine 9,9,1.2.0,1714557600000,53.4,-2.24,M1,North West,C
";

const POSTCODES: &str = "\
postcode,region,segment
SW1A,London,A
M1,North West,C
";

/// Six data rows: RFC 3339 (Z, offset, fractional) and epoch timestamps, one row that is
/// the duplicate of the first (same instant written with an offset), one bad number, one
/// load out of range (refused by the engine), and one row with columns reordered by the
/// header. Four rows are stored.
const CYCLES: &str = "\
device_id,ts,program,temp_setting_c,spin_setting_rpm,load_kg,duration_s,energy_wh,water_l,fill_time_s,max_vibration_g
WM-00000001,2025-03-01T07:30:00Z,cotton,40,1200,4.5,7200,850,48.5,95,0.8
WM-00000001,1740900600000,eco_40_60,40,1400,5.1,10800,620,45.0,101,0.9
WM-00000001,2025-03-01T08:30:00+01:00,cotton,40,1200,4.5,7200,850,48.5,95,0.8
WM-00000002,2025-03-02T07:30:00.5Z,wool,30,800,abc,3600,300,30,80,0.4
WM-00000002,2025-03-03T07:30:00Z,wool,30,800,45,3600,300,30,80,0.4
WM-00000002,2025-03-04T07:30:00Z,quick_15,20,800,2.0,900,120,20,70,0.3
WM-00000002,2025-03-05T07:30:00.250Z,delicates,30,600,1.5,2700,200,25,75,0.3
";

fn stream<'a>(info: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    info["streams"]
        .as_array()
        .expect("streams array")
        .iter()
        .find(|s| s["name"] == name)
        .expect("stream present")
}

fn rows(info: &serde_json::Value, name: &str) -> u64 {
    let s = stream(info, name);
    s["segment_rows"].as_u64().expect("segment_rows")
        + s["memtable_rows"].as_u64().expect("memtable_rows")
}

/// Writes the fixtures and imports them into `db`.
fn import_fixtures(d: &Dir) -> Run {
    d.write("devices.csv", DEVICES);
    d.write("postcodes.csv", POSTCODES);
    d.write("cycles.csv", CYCLES);
    d.run(&[
        "import",
        "db",
        "--devices",
        "devices.csv",
        "--postcodes",
        "postcodes.csv",
        "--cycles",
        "cycles.csv",
        "--batch-rows",
        "3",
    ])
}

#[test]
fn import_reports_accepted_duplicates_and_rejections() {
    let d = Dir::new();
    let run = import_fixtures(&d).ok();
    // Line numbers count the header as line 1.
    assert!(
        run.stdout
            .contains("line 5: column 'load_kg': 'abc' is not a number"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("line 6: column 'load_kg': 45 is outside [0, 30]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("cycles.csv"));

    let json = d
        .run(&[
            "import",
            "db",
            "--devices",
            "devices.csv",
            "--cycles",
            "cycles.csv",
            "--format",
            "json",
        ])
        .ok()
        .json();
    // Importing the same file again: every good row is now a duplicate.
    let cycles = &json["files"][1];
    assert_eq!(cycles["kind"], "cycles");
    assert_eq!(cycles["rows_read"], 7);
    assert_eq!(cycles["accepted"], 0);
    assert_eq!(cycles["duplicates"], 5);
    assert_eq!(cycles["rejected"], 2);
    assert_eq!(json["created"], false);

    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert_eq!(info["devices"], 2);
    assert_eq!(rows(&info, "cycles"), 4);
    assert_eq!(rows(&info, "samples"), 0);

    let table = d.run(&["info", "db"]).ok();
    assert!(table.stdout.contains("cycles"), "{}", table.stdout);
}

#[test]
fn first_import_counts_the_duplicate() {
    let d2 = Dir::new();
    d2.write("devices.csv", DEVICES);
    d2.write("cycles.csv", CYCLES);
    let json = d2
        .run(&[
            "import",
            "db",
            "--devices",
            "devices.csv",
            "--cycles",
            "cycles.csv",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let devices = &json["files"][0];
    assert_eq!(devices["accepted"], 2);
    let cycles = &json["files"][1];
    assert_eq!(cycles["accepted"], 4);
    assert_eq!(cycles["duplicates"], 1);
    assert_eq!(cycles["rejected"], 2);
    let lines: Vec<u64> = cycles["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, vec![5, 6]);
    assert_eq!(json["created"], true);
}

#[test]
fn unknown_devices_are_rejected_or_registered() {
    let d = Dir::new();
    d.write("devices.csv", DEVICES);
    d.write(
        "cycles.csv",
        "ts,device_id,program,temp_setting_c,spin_setting_rpm,load_kg,duration_s,energy_wh,water_l,fill_time_s,max_vibration_g,error_code\n\
         2025-03-01T07:30:00Z,WM-99999999,cotton,40,1200,4.5,7200,850,48.5,95,0.8,E10_fill\n\
         2025-03-01T07:30:00Z,WM-00000001,cotton,40,1200,4.5,7200,850,48.5,95,0.8,\n",
    );
    let json = d
        .run(&[
            "import",
            "db",
            "--devices",
            "devices.csv",
            "--cycles",
            "cycles.csv",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let cycles = &json["files"][1];
    assert_eq!(cycles["accepted"], 1);
    assert_eq!(cycles["rejected"], 1);
    assert_eq!(cycles["reasons"][0]["line"], 2);
    assert!(cycles["reasons"][0]["reason"]
        .as_str()
        .expect("reason")
        .contains("unknown device 'WM-99999999'"));

    let json = d
        .run(&[
            "import",
            "db",
            "--devices",
            "devices.csv",
            "--cycles",
            "cycles.csv",
            "--auto-register",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let cycles = &json["files"][1];
    assert_eq!(cycles["accepted"], 1);
    assert_eq!(cycles["duplicates"], 1);
    assert_eq!(cycles["auto_registered"], 1);
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert_eq!(info["devices"], 3);
}

#[test]
fn unknown_header_column_is_named_and_nothing_is_written() {
    let d = Dir::new();
    d.write("devices.csv", DEVICES);
    d.write(
        "cycles.csv",
        "ts,device_id,program,colour\n2025-03-01T07:30:00Z,WM-00000001,cotton,red\n",
    );
    let run = d.run(&[
        "import",
        "db",
        "--devices",
        "devices.csv",
        "--cycles",
        "cycles.csv",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.starts_with("hearth: error: "), "{}", run.stderr);
    assert!(run.stderr.contains("'colour'"), "{}", run.stderr);
    assert!(run.stderr.contains("cycles.csv"), "{}", run.stderr);
    assert!(!d.path("db").exists(), "the database must not be created");
}

#[test]
fn missing_required_column_is_named() {
    let d = Dir::new();
    d.write("devices.csv", DEVICES);
    d.write(
        "cycles.csv",
        "ts,device_id,program\n2025-03-01T07:30:00Z,WM-00000001,cotton\n",
    );
    let run = d.run(&[
        "import",
        "db",
        "--devices",
        "devices.csv",
        "--cycles",
        "cycles.csv",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("'temp_setting_c'"), "{}", run.stderr);
    assert!(!d.path("db").exists());
}

#[test]
fn missing_file_is_named() {
    let d = Dir::new();
    d.write("devices.csv", DEVICES);
    let run = d.run(&[
        "import",
        "db",
        "--devices",
        "devices.csv",
        "--cycles",
        "nope.csv",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("nope.csv"), "{}", run.stderr);
    assert!(!d.path("db").exists());
}

#[test]
fn usage_errors_exit_2() {
    let d = Dir::new();
    assert_eq!(d.run(&["import", "db"]).code, Some(2));
    assert_eq!(d.run(&["frobnicate"]).code, Some(2));
    assert_eq!(d.run(&["info", "db", "--format", "xml"]).code, Some(2));
    let help = d.run(&["import", "--help"]).ok();
    assert!(help.stdout.contains("Example"), "{}", help.stdout);
}

#[test]
fn info_on_a_missing_directory_fails_without_creating_it() {
    let d = Dir::new();
    let run = d.run(&["info", "nowhere"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("nowhere"), "{}", run.stderr);
    assert!(!d.path("nowhere").exists());
}

fn segment_files(db: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(db)
        .expect("read db dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".hseg"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn verify_passes_then_reports_a_flipped_byte() {
    let d = Dir::new();
    import_fixtures(&d).ok();
    let run = d.run(&["verify", "db"]).ok();
    assert!(run.stdout.starts_with("OK"), "{}", run.stdout);
    assert!(run.stdout.contains("with 4 rows"), "{}", run.stdout);
    let json = d.run(&["verify", "db", "--format", "json"]).ok().json();
    assert_eq!(json["segment_rows"], 4);

    let segs = segment_files(&d.path("db"));
    assert!(!segs.is_empty(), "import flushes to segments");
    for (i, seg) in segs.iter().enumerate() {
        let mut bytes = std::fs::read(seg).expect("read segment");
        // Flip a byte in the data of the first segment, in the footer of the others.
        let at = if i == 0 {
            bytes.len() / 3
        } else {
            bytes.len() - 8
        };
        bytes[at] ^= 0x40;
        std::fs::write(seg, bytes).expect("write segment");
    }
    let run = d.run(&["verify", "db"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let name = segs[0].file_name().and_then(|n| n.to_str()).expect("name");
    let named = segs
        .iter()
        .filter_map(|s| s.file_name().and_then(|n| n.to_str()))
        .any(|n| run.stderr.contains(n));
    assert!(
        named,
        "stderr names a segment file ({name}...): {}",
        run.stderr
    );
    assert!(run.stderr.starts_with("hearth: error: "), "{}", run.stderr);
}

#[test]
fn verify_reports_a_flipped_block_byte() {
    let d = Dir::new();
    import_fixtures(&d).ok();
    let segs = segment_files(&d.path("db"));
    let seg = segs.first().expect("a segment");
    let mut bytes = std::fs::read(seg).expect("read segment");
    // Somewhere past the header, before the index and footer: block data.
    let at = 64.min(bytes.len() / 4);
    bytes[at] ^= 0x01;
    std::fs::write(seg, &bytes).expect("write segment");
    let run = d.run(&["verify", "db"]);
    assert_ne!(run.code, Some(0));
    let name = seg.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(run.stderr.contains(name), "{}", run.stderr);
}

#[test]
fn demo_runs_a_small_fleet() {
    let d = Dir::new();
    let run = d
        .run(&[
            "demo",
            "fleet",
            "--devices",
            "50",
            "--days",
            "14",
            "--seed",
            "3",
        ])
        .ok();
    assert!(run.stdout.contains("cycles"), "{}", run.stdout);
    assert!(run.stdout.contains("bytes/row"), "{}", run.stdout);
    assert!(run.stdout.contains("last 5 cycles"), "{}", run.stdout);
    for family in [
        "Customer care",
        "Product support",
        "Product design",
        "Business intelligence",
        "programs by region",
        "Meaning:",
        "Rarely used",
        "simulator's truth",
    ] {
        assert!(run.stdout.contains(family), "{family}: {}", run.stdout);
    }
    assert!(d.path("fleet").join("MANIFEST").is_file());

    // The same answers as JSON, from the rollups.
    let story = d
        .run(&[
            "demo",
            "fleet",
            "--devices",
            "50",
            "--days",
            "14",
            "--seed",
            "3",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let answers = &story["answers"];
    assert!(answers["usage"]["cycles"].as_u64().is_some(), "{answers}");
    assert!(answers["health"]["verdict"].is_string(), "{answers}");
    let loads = answers["loads"]["by_capacity"].as_array().expect("loads");
    let cycles: u64 = loads.iter().filter_map(|c| c["cycles"].as_u64()).sum();
    assert_eq!(
        cycles,
        story["streams"][0]["rows_stored"].as_u64().expect("rows")
    );
    assert!(
        answers["loads"]["source"]["rollup"].is_object(),
        "{answers}"
    );

    // Running again replaces the demo's own database.
    d.run(&["demo", "fleet", "--devices", "20", "--days", "7", "--quiet"])
        .ok();
    let info = d.run(&["info", "fleet", "--format", "json"]).ok().json();
    assert_eq!(info["devices"], 20);
    assert!(
        info["streams"][0]["rollup_bytes"].as_u64() > Some(0),
        "{info}"
    );
    assert_eq!(
        info["streams"][1]["rollup_bytes"], 0,
        "samples keep no rollups"
    );

    // A directory the demo did not create is left alone.
    std::fs::create_dir(d.path("precious")).expect("mkdir");
    d.write("precious/notes.txt", "keep me");
    let run = d.run(&["demo", "precious", "--devices", "5", "--days", "2"]);
    assert_eq!(run.code, Some(1));
    assert!(d.path("precious/notes.txt").is_file());
}

#[test]
fn broken_pipe_exits_quietly() {
    let d = Dir::new();
    import_fixtures(&d).ok();
    // Close our end of stdout before hearth writes: the write fails with EPIPE.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .current_dir(d.tmp.path())
        .args(["info", "db", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// A simulated fleet, generated and imported once for the whole file (200 devices × 60
// days); each test copies the database, so tests can run in parallel (a database is
// locked by the process that opens it) and none sees another's changes.

struct Fleet {
    dir: tempfile::TempDir,
}

static FLEET: std::sync::OnceLock<Fleet> = std::sync::OnceLock::new();

fn fleet() -> &'static Fleet {
    FLEET.get_or_init(|| {
        let d = Dir::new();
        d.run(&[
            "gen",
            "--devices",
            "200",
            "--days",
            "60",
            "--seed",
            "7",
            "--out",
            "data",
            "--quiet",
        ])
        .ok();
        d.run(&[
            "import",
            "db",
            "--devices",
            "data/devices.csv",
            "--postcodes",
            "data/postcodes.csv",
            "--cycles",
            "data/cycles.csv",
            "--samples",
            "data/samples.csv",
            "--quiet",
            // No k-anonymity here: these tests check the questions' figures against the
            // rows; k-anonymity has its own tests below.
            "--k-anonymity",
            "1",
        ])
        .ok();
        Fleet { dir: d.tmp }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        if name == "LOCK" {
            continue;
        }
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

/// A fresh directory holding a copy of the fleet's database as `db` and its files in `data`.
fn fleet_dir() -> Dir {
    let f = fleet();
    let d = Dir::new();
    copy_dir(&f.dir.path().join("db"), &d.path("db"));
    copy_dir(&f.dir.path().join("data"), &d.path("data"));
    d
}

fn array(run: &Run) -> Vec<serde_json::Value> {
    run.json().as_array().expect("a JSON array").clone()
}

fn csv_lines(run: &Run) -> Vec<String> {
    run.stdout.lines().map(str::to_string).collect()
}

/// Every file name of a directory with its size: to check that a command changed nothing.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("meta").len(),
            )
        })
        .filter(|(n, _)| n != "LOCK")
        .collect();
    v.sort();
    v
}

#[test]
fn gen_then_import_round_trips_in_csv_and_json_lines() {
    let d = fleet_dir();
    for f in ["devices.csv", "postcodes.csv", "cycles.csv", "samples.csv"] {
        assert!(d.path("data").join(f).is_file(), "{f}");
    }
    let gen = d
        .run(&[
            "gen",
            "--devices",
            "200",
            "--days",
            "60",
            "--seed",
            "7",
            "--out",
            "jl",
            "--format",
            "jsonl",
        ])
        .ok();
    // No --quiet, but stderr is not a terminal: no progress bar.
    assert!(gen.stderr.is_empty(), "{}", gen.stderr);
    let json = d
        .run(&[
            "import",
            "db2",
            "--devices",
            "jl/devices.jsonl",
            "--postcodes",
            "jl/postcodes.jsonl",
            "--cycles",
            "jl/cycles.jsonl",
            "--samples",
            "jl/samples.jsonl",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let cycles = &json["files"][2];
    assert_eq!(cycles["kind"], "cycles");
    assert_eq!(cycles["rejected"], 0, "{json}");
    // The simulator's unique rows, whatever the delivery repeated.
    let ours = d.run(&["info", "db", "--format", "json"]).ok().json();
    let theirs = d.run(&["info", "db2", "--format", "json"]).ok().json();
    assert_eq!(rows(&ours, "cycles"), rows(&theirs, "cycles"));
    assert_eq!(rows(&ours, "samples"), rows(&theirs, "samples"));
    assert_eq!(cycles["accepted"].as_u64(), Some(rows(&theirs, "cycles")));
    assert!(
        cycles["duplicates"].as_u64() > Some(0),
        "delivery repeats rows"
    );
    // The same rows, whichever file format carried them.
    for stream in ["cycles", "samples"] {
        let a = d
            .run(&["dump", "db", "--stream", stream, "--format", "csv"])
            .ok();
        let b = d
            .run(&["dump", "db2", "--stream", stream, "--format", "csv"])
            .ok();
        assert!(a.stdout.lines().count() > 100, "{stream}");
        assert!(
            a.stdout == b.stdout,
            "{stream} differs between CSV and JSON Lines"
        );
    }
    // A dump is itself importable, and gives the same rows back.
    let dump = d
        .run(&["dump", "db", "--stream", "cycles", "--format", "csv"])
        .ok();
    d.write("dump.csv", &dump.stdout);
    let json = d
        .run(&[
            "import",
            "db3",
            "--devices",
            "data/devices.csv",
            "--cycles",
            "dump.csv",
            "--format",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(json["files"][1]["duplicates"], 0);
    let again = d
        .run(&["dump", "db3", "--stream", "cycles", "--format", "csv"])
        .ok();
    assert!(again.stdout == dump.stdout);
}

#[test]
fn json_lines_bad_lines_are_named_and_a_bad_first_line_changes_nothing() {
    let d = Dir::new();
    d.write("devices.csv", DEVICES);
    d.write(
        "cycles.jsonl",
        "{\"ts\":\"2025-03-01T07:30:00Z\",\"device_id\":\"WM-00000001\",\"program\":\"cotton\",\"temp_setting_c\":40,\"spin_setting_rpm\":1200,\"load_kg\":4.5,\"duration_s\":7200,\"energy_wh\":850,\"water_l\":48.5,\"fill_time_s\":95,\"max_vibration_g\":0.8}\n\
         \n\
         {\"ts\":1740900600000,\"device_id\":\"WM-00000001\",\"program\":\"cotton\",\"temp_setting_c\":40,\"spin_setting_rpm\":1200,\"load_kg\":4.5,\"duration_s\":7200,\"energy_wh\":850,\"water_l\":48.5,\"fill_time_s\":95\n\
         {\"ts\":1740900700000,\"device_id\":\"WM-00000001\",\"program\":\"cotton\",\"temp_setting_c\":40,\"spin_setting_rpm\":1200,\"load_kg\":[1],\"duration_s\":7200,\"energy_wh\":850,\"water_l\":48.5,\"fill_time_s\":95,\"max_vibration_g\":0.8}\n\
         {\"ts\":1740900800000,\"device_id\":\"WM-00000001\",\"colour\":\"red\"}\n\
         {\"ts\":1740900900000,\"device_id\":\"WM-00000001\",\"program\":\"cotton\",\"temp_setting_c\":40,\"spin_setting_rpm\":1200,\"load_kg\":3,\"duration_s\":7200,\"energy_wh\":850,\"water_l\":48.5,\"fill_time_s\":95}\n",
    );
    let json = d
        .run(&[
            "import",
            "db",
            "--devices",
            "devices.csv",
            "--cycles",
            "cycles.jsonl",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let c = &json["files"][1];
    assert_eq!(c["accepted"], 1, "{json}");
    assert_eq!(c["rejected"], 4, "{json}");
    let reasons: Vec<(u64, String)> = c["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    assert_eq!(reasons[0].0, 3);
    assert!(reasons[0].1.contains("not valid JSON"), "{reasons:?}");
    assert_eq!(reasons[1].0, 4);
    assert!(reasons[1].1.contains("load_kg"), "{reasons:?}");
    assert_eq!(reasons[2].0, 5);
    assert!(reasons[2].1.contains("colour"), "{reasons:?}");
    // Line 6 lacks max_vibration_g, which has no default.
    assert_eq!(reasons[3].0, 6);
    assert!(reasons[3].1.contains("max_vibration_g"), "{reasons:?}");

    // A first line that is not JSON, or has an unknown key: nothing is written.
    let before = listing(&d.path("db"));
    d.write("bad.jsonl", "not json\n");
    let run = d.run(&[
        "import",
        "db",
        "--devices",
        "devices.csv",
        "--cycles",
        "bad.jsonl",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("bad.jsonl: line 1"), "{}", run.stderr);
    d.write(
        "bad.jsonl",
        "{\"ts\":1,\"device_id\":\"x\",\"colour\":\"red\"}\n",
    );
    let run = d.run(&[
        "import",
        "db",
        "--devices",
        "devices.csv",
        "--cycles",
        "bad.jsonl",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("'colour'"), "{}", run.stderr);
    assert_eq!(listing(&d.path("db")), before);
}

#[test]
fn wrong_header_into_an_existing_database_changes_nothing() {
    let d = fleet_dir();
    let before = listing(&d.path("db"));
    d.write(
        "cycles.csv",
        "ts,device_id,program,colour\n2025-03-01T07:30:00Z,WM-00000001,cotton,red\n",
    );
    let run = d.run(&[
        "import",
        "db",
        "--devices",
        "data/devices.csv",
        "--cycles",
        "cycles.csv",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("cycles.csv") && run.stderr.contains("'colour'"),
        "{}",
        run.stderr
    );
    assert_eq!(listing(&d.path("db")), before);
}

#[test]
fn device_questions_in_every_format() {
    let d = fleet_dir();
    let dev = "WM-00000001";
    // C1: newest first, --n rows.
    let last = array(
        &d.run(&["device", "db", dev, "last", "--n", "4", "--format", "json"])
            .ok(),
    );
    assert_eq!(last.len(), 4);
    let ts: Vec<&str> = last.iter().map(|r| r["ts"].as_str().expect("ts")).collect();
    assert!(ts.windows(2).all(|w| w[0] > w[1]), "{ts:?}");
    assert!(last[0]["load_kg"].is_number() && last[0]["program"].is_string());
    assert!(last[0]["temp_setting_c"].is_i64(), "{}", last[0]);
    let csv = csv_lines(
        &d.run(&["device", "db", dev, "last", "--n", "4", "--format", "csv"])
            .ok(),
    );
    assert!(
        csv[0].starts_with("ts,program,temp_setting_c,"),
        "{}",
        csv[0]
    );
    assert_eq!(csv.len(), 5);
    let table = d.run(&["device", "db", dev, "last"]).ok();
    assert!(table.stdout.contains("load_kg"), "{}", table.stdout);

    // C2.
    let s = d
        .run(&["device", "db", dev, "summary", "--format", "json"])
        .ok()
        .json();
    assert_eq!(s["device_id"], dev);
    assert!(s["cycles"].as_u64() > Some(0), "{s}");
    assert!(s["from_day"].as_str().is_some_and(|x| x.len() == 10), "{s}");
    let t = d.run(&["device", "db", dev, "summary"]).ok();
    assert!(t.stdout.contains("a week"), "{}", t.stdout);
    let c = csv_lines(
        &d.run(&["device", "db", dev, "summary", "--format", "csv"])
            .ok(),
    );
    assert_eq!(c[0], "field,value");
    assert!(c.iter().any(|l| l.starts_with("device_id,")), "{c:?}");

    // C3.
    let h = d
        .run(&["device", "db", dev, "health", "--format", "json"])
        .ok()
        .json();
    assert!(["ok", "watch", "service"].contains(&h["verdict"].as_str().expect("verdict")));
    assert!(h["fill_time"]["weekly"].is_array(), "{h}");
    let t = d.run(&["device", "db", dev, "health"]).ok();
    assert!(t.stdout.contains("fill time"), "{}", t.stdout);
    d.run(&["device", "db", dev, "health", "--format", "csv"])
        .ok();

    // C4: the last traced wash of a device that uploads traces.
    let traced = d
        .run(&[
            "dump", "db", "--stream", "samples", "--limit", "1", "--format", "json",
        ])
        .ok();
    let serial = array(&traced)[0]["device_id"]
        .as_str()
        .expect("serial")
        .to_string();
    let tr = d
        .run(&["device", "db", &serial, "trace", "--format", "csv"])
        .ok();
    let lines = csv_lines(&tr);
    assert_eq!(
        lines[0],
        "ts,device_id,phase,drum_rpm,water_temp_c,power_w,vibration_g"
    );
    assert!(lines.len() > 100, "a wash is minutes of 2 Hz samples");
    assert!(
        lines[1].contains(",fill,"),
        "a trace starts with filling: {}",
        lines[1]
    );
    let tj = array(
        &d.run(&["device", "db", &serial, "trace", "--format", "json"])
            .ok(),
    );
    assert_eq!(tj.len(), lines.len() - 1);
    d.run(&["device", "db", &serial, "trace"]).ok();
    // A start that is no wash's.
    let run = d.run(&[
        "device",
        "db",
        &serial,
        "trace",
        "--cycle",
        "2025-01-01T00:00:01Z",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no cycle starting"), "{}", run.stderr);
}

#[test]
fn unknown_serial_is_a_clear_data_error() {
    let d = fleet_dir();
    let before = listing(&d.path("db"));
    for q in ["last", "summary", "health", "trace"] {
        let run = d.run(&["device", "db", "WM-99999999", q]);
        assert_eq!(run.code, Some(1), "{q}");
        assert!(
            run.stderr
                .starts_with("hearth: error: unknown device 'WM-99999999'"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
    let run = d.run(&[
        "dump",
        "db",
        "--stream",
        "cycles",
        "--device",
        "WM-99999999",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("unknown device"), "{}", run.stderr);
    assert_eq!(listing(&d.path("db")), before);
}

fn is_period(p: &str, grain: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = p.split('-').collect();
    match grain {
        "day" => parts.len() == 3 && parts.iter().all(|x| digits(x)) && p.len() == 10,
        "week" => {
            parts.len() == 2
                && digits(parts[0])
                && parts[1].starts_with('W')
                && digits(&parts[1][1..])
                && parts[1].len() == 3
        }
        "month" => parts.len() == 2 && digits(parts[0]) && digits(parts[1]) && p.len() == 7,
        "quarter" => {
            parts.len() == 2 && digits(parts[0]) && ["Q1", "Q2", "Q3", "Q4"].contains(&parts[1])
        }
        "year" => p.len() == 4 && digits(p),
        _ => false,
    }
}

#[test]
fn fleet_programs_by_period_and_plan() {
    let d = fleet_dir();
    let total: u64 = array(&d.run(&["fleet", "db", "programs", "--format", "json"]).ok())
        .iter()
        .map(|r| r["cycles"].as_u64().expect("cycles"))
        .sum();
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert_eq!(total, rows(&info, "cycles"));
    for grain in ["day", "week", "month", "quarter", "year"] {
        let rows = array(
            &d.run(&[
                "fleet", "db", "programs", "--by", "segment", "--period", grain, "--format", "json",
            ])
            .ok(),
        );
        assert!(!rows.is_empty());
        for r in &rows {
            let p = r["period"].as_str().expect("period");
            assert!(is_period(p, grain), "{grain}: {p}");
            assert!(r["segment"].is_string() && r["program"].is_string(), "{r}");
        }
        let sum: u64 = rows
            .iter()
            .map(|r| r["cycles"].as_u64().expect("cycles"))
            .sum();
        assert_eq!(sum, total, "{grain}");
    }
    // Rollups and scan give the same answer.
    let a = d
        .run(&[
            "fleet",
            "db",
            "programs",
            "--setting",
            "temp_setting_c",
            "--by",
            "model",
            "--period",
            "month",
            "--devices",
            "--format",
            "json",
        ])
        .ok();
    let b = d
        .run(&[
            "fleet",
            "db",
            "programs",
            "--setting",
            "temp_setting_c",
            "--by",
            "model",
            "--period",
            "month",
            "--devices",
            "--format",
            "json",
            "--plan",
            "scan",
        ])
        .ok();
    assert_eq!(a.json(), b.json());
    let r = &array(&a)[0];
    assert!(
        r["temp_setting_c"].is_i64() && r["devices"].is_u64() && r["model"].is_string(),
        "{r}"
    );
    let csv = csv_lines(
        &d.run(&[
            "fleet", "db", "programs", "--by", "capacity", "--period", "month", "--format", "csv",
        ])
        .ok(),
    );
    assert_eq!(csv[0], "period,program,capacity_kg,cycles");
    let table = d.run(&["fleet", "db", "programs", "--by", "region"]).ok();
    assert!(
        table.stdout.contains("answered from the rollup"),
        "{}",
        table.stdout
    );
    // A period: --from inclusive, --to exclusive.
    let feb = array(
        &d.run(&[
            "fleet",
            "db",
            "programs",
            "--period",
            "month",
            "--from",
            "2025-02-01",
            "--to",
            "2025-03-01",
            "--format",
            "json",
        ])
        .ok(),
    );
    assert!(feb.iter().all(|r| r["period"] == "2025-02"), "{feb:?}");
}

#[test]
fn fleet_questions_in_every_format() {
    let d = fleet_dir();
    let cases: &[(&[&str], &[&str])] = &[
        (&["snapshot"], &["device_id", "ts", "program"]),
        (&["service"], &["device_id", "verdict", "reason"]),
        (
            &["loads"],
            &[
                "capacity_kg",
                "cycles",
                "mean_load_kg",
                "share_at_least_90pct",
            ],
        ),
        (&["rare"], &["model", "program", "cycles", "share"]),
        (
            &["rare", "--by", "region", "--max-share", "0.05"],
            &["region", "program"],
        ),
        (
            &["energy"],
            &[
                "program",
                "temp_setting_c",
                "cycles",
                "mean_energy_wh",
                "mean_water_l",
            ],
        ),
        (
            &["bands"],
            &["segment", "devices", "light", "medium", "heavy"],
        ),
        (
            &[
                "bands",
                "--by",
                "model",
                "--light-below",
                "2",
                "--heavy-above",
                "5",
            ],
            &["model", "light"],
        ),
        (&["hours"], &["hour", "monday", "sunday", "cycles"]),
    ];
    for (args, keys) in cases {
        let mut a = vec!["fleet", "db"];
        a.extend_from_slice(args);
        let t = d.run(&a).ok();
        assert!(!t.stdout.is_empty());
        let mut j = a.clone();
        j.extend(["--format", "json"]);
        let rows = array(&d.run(&j).ok());
        assert!(!rows.is_empty(), "{args:?}");
        for k in *keys {
            assert!(
                rows[0].get(*k).is_some(),
                "{args:?}: no '{k}' in {}",
                rows[0]
            );
        }
        let mut c = a.clone();
        c.extend(["--format", "csv"]);
        let lines = csv_lines(&d.run(&c).ok());
        assert!(lines[0].starts_with(keys[0]), "{args:?}: {}", lines[0]);
        assert_eq!(lines.len(), rows.len() + 1, "{args:?}");
    }
    let hours = array(&d.run(&["fleet", "db", "hours", "--format", "json"]).ok());
    assert_eq!(hours.len(), 24);
    // The support list names real verdicts.
    for r in array(&d.run(&["fleet", "db", "service", "--format", "json"]).ok()) {
        assert!(
            ["watch", "service"].contains(&r["verdict"].as_str().expect("verdict")),
            "{r}"
        );
        assert!(!r["reason"].as_str().expect("reason").is_empty());
    }
}

#[test]
fn anova_and_chi_square_print_one_object() {
    let d = fleet_dir();
    let a = d
        .run(&[
            "fleet",
            "db",
            "anova",
            "--measure",
            "energy_wh",
            "--by",
            "segment",
            "--format",
            "json",
        ])
        .ok()
        .json();
    for k in [
        "f",
        "df_between",
        "df_within",
        "p_value",
        "groups",
        "meaning",
    ] {
        assert!(a.get(k).is_some(), "no '{k}' in {a}");
    }
    let groups = a["groups"].as_array().expect("groups");
    assert!(groups.len() > 2);
    assert!(
        groups[0]["segment"].is_string()
            && groups[0]["n"].is_u64()
            && groups[0]["mean"].is_number()
    );
    let p = a["p_value"].as_f64().expect("p");
    assert!((0.0..=1.0).contains(&p));
    let scan = d
        .run(&[
            "fleet",
            "db",
            "anova",
            "--measure",
            "energy_wh",
            "--by",
            "segment",
            "--format",
            "json",
            "--plan",
            "scan",
        ])
        .ok()
        .json();
    assert_eq!(a["f"], scan["f"]);
    let t = d
        .run(&[
            "fleet",
            "db",
            "anova",
            "--measure",
            "cycles_per_week",
            "--by",
            "region",
        ])
        .ok();
    assert!(t.stdout.contains("Meaning:"), "{}", t.stdout);

    let c = d
        .run(&[
            "fleet",
            "db",
            "chi2",
            "--setting",
            "program",
            "--by",
            "region",
            "--format",
            "json",
        ])
        .ok()
        .json();
    for k in ["statistic", "df", "p_value", "rows", "columns", "observed"] {
        assert!(c.get(k).is_some(), "no '{k}' in {c}");
    }
    let observed: u64 = c["observed"]
        .as_array()
        .expect("observed")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_u64().expect("n"))
        })
        .sum();
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert_eq!(observed, rows(&info, "cycles"));
    let csv = csv_lines(&d.run(&["fleet", "db", "chi2", "--format", "csv"]).ok());
    assert_eq!(csv[0], "field,value");
    assert!(csv.iter().any(|l| l.starts_with("statistic,")), "{csv:?}");
    let t = d.run(&["fleet", "db", "chi2"]).ok();
    assert!(t.stdout.contains("Meaning:"), "{}", t.stdout);
}

#[test]
fn fleet_usage_errors_exit_2() {
    let d = fleet_dir();
    for args in [
        &["fleet", "db", "loads", "--period", "month"][..],
        &["fleet", "db", "programs", "--measure", "energy_wh"],
        &["fleet", "db", "anova", "--measure", "colour"],
        &["fleet", "db", "programs", "--by", "colour"],
        &["fleet", "db", "programs", "--period", "fortnight"],
        &["fleet", "db", "popularity"],
        &["fleet", "db", "programs", "--from", "2025-02-30"],
        &[
            "fleet",
            "db",
            "programs",
            "--from",
            "2025-03-01",
            "--to",
            "2025-02-01",
        ],
        &["dump", "db", "--stream", "colours"],
        &[
            "device",
            "db",
            "WM-00000001",
            "last",
            "--from",
            "2025-01-01",
        ],
        &["device", "db", "WM-00000001", "age"],
    ] {
        let run = d.run(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.is_empty());
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    // A missing database is a data error.
    let run = d.run(&["fleet", "nowhere", "loads"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("nowhere"), "{}", run.stderr);
    assert!(!d.path("nowhere").exists());
}

#[test]
fn dump_filters_by_device_period_and_limit() {
    let d = fleet_dir();
    let rows = array(
        &d.run(&[
            "dump",
            "db",
            "--stream",
            "cycles",
            "--device",
            "WM-00000003",
            "--from",
            "2025-02-01",
            "--to",
            "2025-02-15",
            "--format",
            "json",
        ])
        .ok(),
    );
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["device_id"], "WM-00000003");
        let ts = r["ts"].as_str().expect("ts");
        assert!(("2025-02-01".."2025-02-15").contains(&ts), "{ts}");
    }
    let limited = array(
        &d.run(&[
            "dump", "db", "--stream", "samples", "--limit", "7", "--format", "json",
        ])
        .ok(),
    );
    assert_eq!(limited.len(), 7);
    let csv = csv_lines(
        &d.run(&[
            "dump", "db", "--stream", "cycles", "--limit", "3", "--format", "csv",
        ])
        .ok(),
    );
    assert_eq!(csv.len(), 4);
    assert!(csv[0].starts_with("ts,device_id,program,"));
    let t = d
        .run(&["dump", "db", "--stream", "cycles", "--limit", "3"])
        .ok();
    assert!(t.stdout.contains("device_id"));
}

#[test]
fn compact_keeps_every_answer() {
    let d = fleet_dir();
    // Another import adds segments to compact (the same rows again: all duplicates, plus
    // a small file of new rows).
    d.write(
        "more.csv",
        "ts,device_id,program,temp_setting_c,spin_setting_rpm,load_kg,duration_s,energy_wh,water_l,fill_time_s,max_vibration_g\n\
         2025-01-15T07:30:00.001Z,WM-00000001,cotton,40,1200,4.5,7200,850,48.5,95,0.8\n",
    );
    d.run(&[
        "import",
        "db",
        "--devices",
        "data/devices.csv",
        "--cycles",
        "more.csv",
    ])
    .ok();
    let before = d
        .run(&[
            "fleet", "db", "programs", "--by", "segment", "--period", "week", "--format", "json",
        ])
        .ok()
        .json();
    let dump = d
        .run(&["dump", "db", "--stream", "cycles", "--format", "csv"])
        .ok();
    let j = d.run(&["compact", "db", "--format", "json"]).ok().json();
    assert!(j["windows_compacted"].as_u64() >= Some(1), "{j}");
    assert!(
        j["segments_after"].as_u64() < j["segments_before"].as_u64(),
        "{j}"
    );
    let after = d
        .run(&[
            "fleet", "db", "programs", "--by", "segment", "--period", "week", "--format", "json",
        ])
        .ok()
        .json();
    assert_eq!(before, after);
    assert!(
        dump.stdout
            == d.run(&["dump", "db", "--stream", "cycles", "--format", "csv"])
                .ok()
                .stdout
    );
    d.run(&["verify", "db"]).ok();
    let t = d.run(&["compact", "db"]).ok();
    assert!(t.stdout.starts_with("Compacted 0 windows"), "{}", t.stdout);
}

#[test]
fn bench_times_every_question() {
    let d = fleet_dir();
    let j = d
        .run(&["bench", "db", "--runs", "5", "--format", "json"])
        .ok()
        .json();
    let rows = j.as_array().expect("an array");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["query"].as_str()).collect();
    assert_eq!(
        names,
        ["c1", "c2", "c3", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"]
    );
    for r in rows {
        let (p50, p99) = (r["p50_us"].as_f64(), r["p99_us"].as_f64());
        assert!(p50.is_some_and(|x| x > 0.0) && p99 >= p50, "{r}");
        assert_eq!(r["runs"].as_u64(), Some(5), "{r}");
    }
    let csv = d
        .run(&[
            "bench",
            "db",
            "--queries",
            "c1,d2",
            "--runs",
            "3",
            "--format",
            "csv",
        ])
        .ok();
    assert!(
        csv.stdout.starts_with("query,runs,p50_us,p99_us\n"),
        "{}",
        csv.stdout
    );
    assert_eq!(csv.stdout.lines().count(), 3);
    let bad = d.run(&["bench", "db", "--queries", "c9"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("unknown question 'c9'"),
        "{}",
        bad.stderr
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    let d = Dir::new();
    for cmd in [
        "demo",
        "gen",
        "import",
        "device",
        "fleet",
        "dump",
        "info",
        "verify",
        "compact",
        "report",
        "bench",
        "retention",
    ] {
        let run = d.run(&[cmd, "--help"]).ok();
        assert!(run.stdout.contains("Example"), "{cmd}: {}", run.stdout);
        assert!(run.stdout.contains(&format!("hearth {cmd}")), "{cmd}");
    }
    let top = d.run(&["--help"]).ok();
    assert!(top.stdout.contains("Exit status"), "{}", top.stdout);
}

#[test]
fn info_and_import_print_csv() {
    let d = fleet_dir();
    let csv = csv_lines(&d.run(&["info", "db", "--format", "csv"]).ok());
    assert!(csv[0].starts_with("stream,segment_rows,"), "{}", csv[0]);
    assert_eq!(csv.len(), 3);
    let csv = csv_lines(&d.run(&["verify", "db", "--format", "csv"]).ok());
    assert_eq!(csv[0], "field,value");
    let csv = csv_lines(
        &d.run(&[
            "import",
            "db",
            "--devices",
            "data/devices.csv",
            "--format",
            "csv",
        ])
        .ok(),
    );
    assert!(csv[0].starts_with("file,kind,rows_read,"), "{}", csv[0]);
}

#[test]
fn report_is_one_self_contained_page() {
    let d = fleet_dir();
    let run = d.run(&["report", "db", "--out", "report.html"]).ok();
    assert!(run.stdout.contains("report.html"), "{}", run.stdout);
    let html = std::fs::read_to_string(d.path("report.html")).expect("report written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    let svgs = html.matches("<svg").count();
    assert!(svgs >= 3, "{svgs} charts");
    assert_eq!(svgs, html.matches("</svg>").count());
    for needle in [
        "Programs by region",
        "Load versus drum capacity",
        "Usage bands by segment",
        "flagged for service",
        "<polyline",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    // Nothing to fetch: no scripts, stylesheets, images or links to anywhere.
    for banned in ["http:", "https:", "<script", "<link", "<img", "src="] {
        assert!(!html.contains(banned), "{banned}");
    }
    // A missing database writes nothing.
    let run = d.run(&["report", "nowhere", "--out", "r2.html"]);
    assert_eq!(run.code, Some(1));
    assert!(!d.path("r2.html").exists());
}

#[test]
fn a_database_without_cycles_says_so() {
    let d = Dir::new();
    d.write("devices.csv", DEVICES);
    d.run(&["import", "db", "--devices", "devices.csv"]).ok();
    for args in [
        &["fleet", "db", "programs"][..],
        &["fleet", "db", "service"],
        &["device", "db", "WM-00000001", "summary"],
        &["device", "db", "WM-00000001", "health"],
        &["report", "db", "--out", "r.html"],
    ] {
        let run = d.run(args);
        assert_eq!(run.code, Some(1), "{args:?}");
        assert!(
            run.stderr.contains("holds no cycles"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // Questions with no rows to show answer with none.
    let last = d
        .run(&["device", "db", "WM-00000001", "last", "--format", "json"])
        .ok();
    assert_eq!(array(&last).len(), 0);
    let dump = d
        .run(&["dump", "db", "--stream", "cycles", "--format", "csv"])
        .ok();
    assert_eq!(csv_lines(&dump).len(), 1, "the header only");
}

#[test]
fn a_long_dump_into_a_closed_pipe_exits_quietly() {
    use std::io::Read;
    let d = fleet_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .current_dir(d.tmp.path())
        .args(["dump", "db", "--stream", "samples", "--format", "csv"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read the first bytes, as `head -c` would, then close the pipe.
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(first.starts_with(b"ts,device_id,phase"));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Privacy: export, audit, k-anonymity.

#[test]
fn export_round_trips_through_import_and_is_audited() {
    let d = fleet_dir();
    let serial = "WM-00000007";
    d.run(&["export", "db", serial, "--format", "csv", "--out", "exp"])
        .ok();
    assert!(d.path("exp/device.csv").is_file() && d.path("exp/cycles_weeks.csv").is_file());
    let mut import = vec![
        "import",
        "copy",
        "--devices",
        "exp/device.csv",
        "--cycles",
        "exp/cycles.csv",
        "--quiet",
    ];
    if d.path("exp/samples.csv").is_file() {
        import.extend(["--samples", "exp/samples.csv"]);
    }
    d.run(&import).ok();
    d.run(&["export", "db", serial, "--out", "a.json"]).ok();
    d.run(&["export", "copy", serial, "--out", "b.json"]).ok();
    let read = |f: &str| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.path(f)).expect("read")).expect("json");
        v.as_object_mut().expect("object").remove("exported_at_ms");
        v
    };
    let (a, b) = (read("a.json"), read("b.json"));
    assert_eq!(a, b, "export, CSV, import, export: the same");
    assert!(a["streams"][0]["rows"].as_array().expect("rows").len() > 5);
    assert_eq!(a["device"]["serial"], serial);
    // JSON on stdout.
    let j = d.run(&["export", "db", serial]).ok().json();
    assert_eq!(j["week_cells"], a["week_cells"]);
    // A failed export is recorded too; the log names no serial.
    let e = d.run(&["export", "db", "WM-99999999"]);
    assert_eq!(e.code, Some(1));
    assert!(e.stderr.contains("unknown device"), "{}", e.stderr);
    let log = array(&d.run(&["audit", "db", "--format", "json"]).ok());
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[..3]
        .iter()
        .all(|r| r["kind"] == "export" && r["outcome"] == "ok"));
    assert_eq!(log[3]["outcome"], "failed");
    let mine = array(
        &d.run(&["audit", "db", "--device", serial, "--format", "json"])
            .ok(),
    );
    assert_eq!(mine.len(), 3);
    assert_ne!(mine[0]["device"], log[3]["device"]);
    let table = d.run(&["audit", "db"]).ok();
    assert!(!table.stdout.contains("WM-"), "{}", table.stdout);
    let bytes = std::fs::read(d.path("db/audit.log")).expect("audit.log");
    assert!(!bytes.windows(3).any(|w| w == b"WM-"));
    // The copy's log holds its one export; verify checks both logs.
    assert_eq!(
        array(&d.run(&["audit", "copy", "--format", "json"]).ok()).len(),
        1
    );
    d.run(&["verify", "db"]).ok();
    // CSV needs a directory.
    assert_eq!(
        d.run(&["export", "db", serial, "--format", "csv"]).code,
        Some(2)
    );
}

/// A small fleet with the default k (5): some groups are smaller.
fn small_fleet_dir() -> Dir {
    let d = Dir::new();
    d.run(&[
        "gen",
        "--devices",
        "40",
        "--days",
        "45",
        "--seed",
        "3",
        "--out",
        "data",
        "--quiet",
    ])
    .ok();
    d.run(&[
        "import",
        "db",
        "--devices",
        "data/devices.csv",
        "--postcodes",
        "data/postcodes.csv",
        "--cycles",
        "data/cycles.csv",
        "--quiet",
    ])
    .ok();
    d
}

#[test]
fn fleet_answers_are_k_anonymous() {
    let d = small_fleet_dir();
    let programs = |k: Option<&str>, plan: &str| {
        let mut a = vec![
            "fleet",
            "db",
            "programs",
            "--by",
            "region",
            "--period",
            "month",
            "--devices",
            "--format",
            "json",
            "--plan",
            plan,
        ];
        if let Some(k) = k {
            a.extend(["--k", k]);
        }
        d.run(&a).ok()
    };
    for plan in ["auto", "scan"] {
        let r = programs(None, plan);
        assert!(r.stderr.contains("k-anonymity (k = 5)"), "{}", r.stderr);
        let rows = array(&r);
        assert!(!rows.is_empty());
        assert!(
            rows.iter().all(|x| x["devices"].as_u64() >= Some(5)),
            "{rows:?}"
        );
        let r8 = programs(Some("8"), plan);
        let rows8 = array(&r8);
        assert!(rows8.len() < rows.len());
        assert!(rows8.iter().all(|x| x["devices"].as_u64() >= Some(8)));
        assert_eq!(programs(Some("5"), plan).json(), r.json());
    }
    assert_eq!(
        array(&programs(None, "auto")),
        array(&programs(None, "scan")),
        "rollup and scan suppress alike"
    );
    let t = d.run(&["fleet", "db", "programs", "--by", "segment"]).ok();
    assert!(t.stdout.contains("left out"), "{}", t.stdout);
    // Never below the database's setting; not for the support list.
    let low = d.run(&["fleet", "db", "programs", "--k", "4"]);
    assert_eq!(low.code, Some(2));
    assert!(low.stderr.contains("below"), "{}", low.stderr);
    assert_eq!(d.run(&["fleet", "db", "service", "--k", "9"]).code, Some(2));
    // Statistics name the groups they leave out.
    let a = d
        .run(&[
            "fleet", "db", "anova", "--by", "segment", "--format", "json",
        ])
        .ok()
        .json();
    assert_eq!(a["suppressed"]["k"], 5);
    let left: Vec<&str> = a["suppressed"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["group"][0].as_str().expect("name"))
        .collect();
    assert!(!left.is_empty());
    for g in a["groups"].as_array().expect("groups") {
        assert!(!left.contains(&g["segment"].as_str().expect("segment")));
    }
    let c = d
        .run(&["fleet", "db", "chi2", "--by", "segment", "--format", "json"])
        .ok()
        .json();
    assert!(!c["suppressed"]["groups"]
        .as_array()
        .expect("groups")
        .is_empty());
    // The HTML report's fleet charts are k-anonymous too, and say what they left out.
    d.run(&["report", "db", "--out", "r.html"]).ok();
    let html = std::fs::read_to_string(d.path("r.html")).expect("report");
    assert!(html.contains("fewer than 5 distinct devices"), "no k note");
    assert!(
        html.contains("k-anonymity (k = 5): "),
        "nothing left out named"
    );
    // A database created with a smaller k accepts it.
    let e = Dir::new();
    copy_dir(&d.path("data"), &e.path("data"));
    e.run(&[
        "import",
        "db",
        "--devices",
        "data/devices.csv",
        "--cycles",
        "data/cycles.csv",
        "--quiet",
        "--k-anonymity",
        "2",
    ])
    .ok();
    e.run(&["fleet", "db", "programs", "--k", "2"]).ok();
    assert_eq!(
        e.run(&["fleet", "db", "programs", "--k", "1"]).code,
        Some(2)
    );
}

#[test]
fn erase_then_purge_forgets_the_device_everywhere() {
    let d = fleet_dir();
    let serial = "WM-00000007";
    let before = d.run(&["fleet", "db", "programs", "--format", "json"]).ok();
    let e = d
        .run(&["erase", "db", serial, "--format", "json"])
        .ok()
        .json();
    assert!(e["segment_rows"].as_u64().expect("rows") > 0, "{e}");
    assert!(e["purge"].is_null());
    // Gone from every answer at once.
    let gone = d.run(&["device", "db", serial, "last"]);
    assert_eq!(gone.code, Some(1));
    assert!(gone.stderr.contains("unknown device"), "{}", gone.stderr);
    let after = d.run(&["fleet", "db", "programs", "--format", "json"]).ok();
    assert_ne!(
        before.stdout, after.stdout,
        "the fleet answer lost its cycles"
    );
    assert_eq!(d.run(&["erase", "db", serial]).code, Some(1));
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert_eq!(info["erased_pending_purge"], 1);
    assert_eq!(info["devices"], 199);
    // Purge rewrites only what held the device; the answers do not change.
    let p = d.run(&["purge", "db", "--format", "json"]).ok().json();
    assert_eq!(p["devices"], 1);
    assert_eq!(p["rows_dropped"], e["segment_rows"]);
    let table = d.run(&["purge", "db"]).ok();
    assert!(
        table.stdout.starts_with("Purged 0 erased devices"),
        "{}",
        table.stdout
    );
    let again = d.run(&["fleet", "db", "programs", "--format", "json"]).ok();
    assert_eq!(after.stdout, again.stdout);
    d.run(&["verify", "db"]).ok();
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert_eq!(info["erased_pending_purge"], 0);
    for entry in std::fs::read_dir(d.path("db")).expect("db dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes.windows(serial.len()).any(|w| w == serial.as_bytes()),
            "{} names the erased serial",
            path.display()
        );
    }
    let log = array(&d.run(&["audit", "db", "--format", "json"]).ok());
    let kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("erase", "ok"),
            ("erase", "failed"),
            ("purge", "ok"),
            ("purge", "ok")
        ]
    );
    // Erase and purge in one go, in CSV.
    let csv = d
        .run(&["erase", "db", "WM-00000008", "--purge", "--format", "csv"])
        .ok();
    let lines = csv_lines(&csv);
    assert_eq!(lines[0], "field,value");
    assert!(
        lines.iter().any(|l| l.starts_with("purge.rows_dropped,")),
        "{}",
        csv.stdout
    );
}

/// Rows of a stream, from `hearth info --format json`.
fn stored_rows(d: &Dir, stream: &str) -> u64 {
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    info["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["name"] == stream)
        .map(|s| s["segment_rows"].as_u64().unwrap_or(0) + s["memtable_rows"].as_u64().unwrap_or(0))
        .expect("stream")
}

#[test]
fn retention_sets_shows_applies_and_is_audited() {
    let d = Dir::new();
    d.run(&[
        "gen",
        "--devices",
        "30",
        "--days",
        "60",
        "--seed",
        "5",
        "--out",
        "data",
        "--quiet",
        "--trace-share",
        "0.2",
    ])
    .ok();
    d.run(&[
        "import",
        "db",
        "--devices",
        "data/devices.csv",
        "--cycles",
        "data/cycles.csv",
        "--samples",
        "data/samples.csv",
        "--quiet",
    ])
    .ok();
    let none = d.run(&["retention", "db"]).ok();
    assert!(
        none.stdout.contains("No retention policy"),
        "{}",
        none.stdout
    );
    assert_eq!(
        d.run(&["retention", "db", "--format", "json"]).ok().json(),
        serde_json::json!([])
    );
    let samples = stored_rows(&d, "samples");
    let cycles = stored_rows(&d, "cycles");
    let cycles_dump = d
        .run(&["dump", "db", "--stream", "cycles", "--format", "csv"])
        .ok()
        .stdout;
    // Samples are kept 30 days, at 2025-03-02: weekly windows that ended by 2025-01-31 go
    // (the traced washes are sparse: not every week has samples).
    let j = d
        .run(&[
            "retention",
            "db",
            "--stream",
            "samples",
            "--keep",
            "30d",
            "--now",
            "2025-03-02",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let row = &j[0];
    assert_eq!(row["stream"], "samples", "{j}");
    assert_eq!(row["keep"], "30d");
    assert_eq!(row["cutoff"], "2025-01-31T00:00:00Z");
    let dropped = row["rows"].as_u64().expect("rows");
    assert!(dropped > 0 && row["windows"].as_u64() >= Some(1), "{j}");
    assert_eq!(stored_rows(&d, "samples"), samples - dropped);
    assert_eq!(stored_rows(&d, "cycles"), cycles, "cycles have no policy");
    let first = d
        .run(&[
            "dump", "db", "--stream", "samples", "--format", "csv", "--limit", "100000",
        ])
        .ok()
        .stdout;
    let oldest = first
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .min()
        .expect("samples left")
        .to_string();
    // Weekly windows start on Thursdays: the one from 2025-01-30 ends after the cutoff.
    assert!(oldest.as_str() >= "2025-01-30", "{oldest}");
    assert_eq!(
        d.run(&["dump", "db", "--stream", "cycles", "--format", "csv"])
            .ok()
            .stdout,
        cycles_dump
    );
    // The policy is stored; the table and CSV list it.
    let csv = d.run(&["retention", "db", "--format", "csv"]).ok().stdout;
    assert_eq!(
        csv,
        "stream,keep,keep_ms,keep_device_rollups,keep_device_rollups_ms,window,window_ms\nsamples,30d,2592000000,,,7d,604800000\n"
    );
    // Applying again at the same instant drops nothing; the table says so.
    let t = d
        .run(&["retention", "db", "--apply", "--now", "2025-03-02"])
        .ok()
        .stdout;
    assert!(t.contains("dropped 0 rows in 0 windows"), "{t}");
    // Both runs are in the audit log, with no device.
    let audit = d.run(&["audit", "db", "--format", "json"]).ok().json();
    let runs: Vec<&serde_json::Value> = audit
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["kind"] == "retention")
        .collect();
    assert_eq!(runs.len(), 2, "{audit}");
    assert!(runs
        .iter()
        .all(|e| e["outcome"] == "ok" && e["device"].is_null()));
    assert!(
        runs[0]["detail"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("{dropped} rows"))),
        "{audit}"
    );
    let v = d.run(&["verify", "db"]).ok().stdout;
    assert!(!v.contains("note:"), "{v}");
    // Removing the policy.
    d.run(&["retention", "db", "--stream", "samples", "--clear"])
        .ok();
    assert_eq!(
        d.run(&["retention", "db", "--format", "json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn retention_keeps_device_rollups_longer_than_raw_rows() {
    let d = fleet_dir();
    let cycles = stored_rows(&d, "cycles");
    let before = listing(&d.path("db"));
    // Shorter than the raw period: refused, nothing stored or dropped.
    let r = d.run(&[
        "retention",
        "db",
        "--stream",
        "cycles",
        "--keep",
        "400d",
        "--keep-device-rollups",
        "300d",
    ]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("protects nothing"), "{}", r.stderr);
    assert_eq!(
        d.run(&["retention", "db", "--format", "json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(stored_rows(&d, "cycles"), cycles);
    assert_eq!(
        listing(&d.path("db"))
            .iter()
            .filter(|(n, _)| n != "audit.log" && n != "PRIVACY")
            .collect::<Vec<_>>(),
        before
            .iter()
            .filter(|(n, _)| n != "audit.log" && n != "PRIVACY")
            .collect::<Vec<_>>()
    );
    // Raw cycles kept a day, their week cells 100 years: long after the data, every cycle
    // is gone and the week cells are kept in device summaries.
    let j = d
        .run(&[
            "retention",
            "db",
            "--stream",
            "cycles",
            "--keep",
            "1d",
            "--keep-device-rollups",
            "36500d",
            "--now",
            "2030-01-01",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let row = &j[0];
    assert_eq!(row["rows"].as_u64(), Some(cycles), "{j}");
    assert!(row["summaries_kept"].as_u64() >= Some(1), "{j}");
    assert_eq!(row["summaries_dropped"], 0, "{j}");
    assert_eq!(stored_rows(&d, "cycles"), 0);
    let csv = d.run(&["retention", "db", "--format", "csv"]).ok().stdout;
    assert_eq!(
        csv,
        "stream,keep,keep_ms,keep_device_rollups,keep_device_rollups_ms,window,window_ms\ncycles,1d,86400000,36500d,3153600000000,365d,31536000000\n"
    );
    let info = d.run(&["info", "db", "--format", "json"]).ok().json();
    assert!(
        info["streams"][0]["summary_windows"].as_u64() >= Some(1),
        "{info}"
    );
    let table = d.run(&["info", "db"]).ok().stdout;
    assert!(table.contains("cycles: device summaries"), "{table}");
    assert!(d.run(&["verify", "db"]).code == Some(0));
    // The audit record says what was kept.
    let audit = d.run(&["audit", "db", "--format", "json"]).ok().json();
    let last = audit.as_array().and_then(|a| a.last()).expect("a record");
    assert!(
        last["detail"]
            .as_str()
            .is_some_and(|s| s.contains("device rollups keep 3153600000000 ms")),
        "{last}"
    );
}

#[test]
fn retention_usage_errors_exit_2() {
    let d = fleet_dir();
    for args in [
        &["retention", "db", "--keep", "30d"][..],
        &["retention", "db", "--stream", "cycles", "--keep", "3w"],
        &["retention", "db", "--stream", "cycles", "--keep", "0d"],
        &["retention", "db", "--stream", "cycles", "--keep", "30"],
        &["retention", "db", "--stream", "colours", "--keep", "30d"],
        &["retention", "db", "--stream", "cycles"],
        &["retention", "db", "--now", "2025-01-01"],
        &["retention", "db", "--keep-device-rollups", "30d"],
        &[
            "retention",
            "db",
            "--stream",
            "cycles",
            "--keep",
            "30d",
            "--keep-device-rollups",
            "2w",
        ],
        &[
            "retention",
            "db",
            "--stream",
            "cycles",
            "--keep",
            "30d",
            "--clear",
        ],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("hearth: error") || r.stderr.contains("error:"),
            "{}",
            r.stderr
        );
    }
    // Nothing was stored or dropped.
    assert_eq!(
        d.run(&["retention", "db", "--format", "json"]).ok().json(),
        serde_json::json!([])
    );
    assert!(d
        .run(&["audit", "db", "--format", "json"])
        .ok()
        .json()
        .as_array()
        .is_none_or(|a| a.is_empty()));
    assert_eq!(d.run(&["retention", "missing-db"]).code, Some(1));
}
