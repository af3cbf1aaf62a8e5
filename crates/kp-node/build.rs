//! Generates the kp.v1.Node service (server and client) from proto/, with the descriptor set
//! that server reflection serves.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("kp/v1/node.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("kp_node_descriptor.bin"))
        // `kpledger status --json` prints the answer as it is.
        .type_attribute("kp.v1.GetStatusResponse", "#[derive(serde::Serialize)]")
        .compile_protos(&[file], &[root])?;
    Ok(())
}
