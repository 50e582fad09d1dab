#![no_main]
// The body is shared with tests/fuzz_regressions.rs (stable CI), see src/lib.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzz::image_folder(data);
});
