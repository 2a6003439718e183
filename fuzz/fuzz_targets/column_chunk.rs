//! Decodes arbitrary bytes as a column chunk; what decodes must re-encode and round-trip.
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run column_chunk`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hearth::fuzzing::column_chunk(data);
});
