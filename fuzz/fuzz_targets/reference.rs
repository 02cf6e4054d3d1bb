//! Image references as users and API clients type them (`busybox`, `host:5000/a/b:tag@sha256:…`):
//! parsing never panics, and what parses prints back to a reference that parses the same.
#![no_main]

use berth_image::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = Reference::parse(text) else {
        return;
    };
    let again = Reference::parse(&reference.to_string()).expect("a printed reference parses");
    assert_eq!(again, reference);
    let _ = reference.familiar();
    let _ = reference.clone().with_default_tag();
    let _ = reference.with_tag("latest");
});
