//! Compiles `proto/sync.proto` with protox (a .proto compiler in Rust, so no
//! system `protoc` is needed) and generates the prost types into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sync.proto");
    let fds = protox::compile(["proto/sync.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
