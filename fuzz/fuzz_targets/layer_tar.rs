//! Layer tars as a registry, `load` or `import` delivers them: unpacking never panics and never
//! writes outside the layer directory (every path below the scratch directory but the layer is
//! checked to be untouched).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-fuzz-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("scratch directory")
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let layer = dir.path().join("layer");
    std::fs::create_dir(&layer).expect("layer dir");
    let _ = berth_image::apply_tar(&mut &data[..], &layer);
    // Nothing but the layer directory may be in the scratch directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        [std::ffi::OsString::from("layer")],
        "wrote outside the layer"
    );
    let _ = Path::new("");
});
