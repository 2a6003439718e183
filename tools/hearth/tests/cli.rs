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
