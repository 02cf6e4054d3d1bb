//! `berth oci …` as a standalone binary, for the runtime's own tests (the real entry point
//! is `berth oci` in the main binary).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(berth_runtime::oci_main(&args));
}
