//! Generates the kp.v1 types from proto/, the project's one schema source.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["kp/v1/events.proto", "kp/v1/ledger.proto"].map(|f| root.join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    prost_build::Config::new().compile_protos(&files, &[root])?;
    Ok(())
}
