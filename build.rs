//! Links the `berth` binary as a non-PIE executable: its relocations are then resolved at link
//! time, so the pages holding them stay clean and shared between the many monitor processes
//! (each container has one) instead of being dirtied privately in every one of them.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
