//! `embed_migrations!` only reads the files that exist at build time; this
//! makes a new migration in `sql/` trigger a rebuild (DEPENDENCIES.md,
//! refinery).
fn main() {
    println!("cargo:rerun-if-changed=sql");
}
