//! Rebuilds the store when a migration is added, so that the embedded migrations are never stale.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
