//! Compiles every .proto file under the workspace's `proto/` folder with protox (a
//! pure-Rust protobuf compiler), so no system `protoc` is needed.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            let rel = path.strip_prefix(root).expect("file lies under the proto root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let root = root.canonicalize()?;
    println!("cargo:rerun-if-changed={}", root.display());
    // The paths above are absolute, so in a target dir shared by several checkouts (the CI
    // cache outside the clone, git worktrees) a build from another checkout would find
    // them unchanged and reuse that checkout's generated code. The directory cargo runs
    // in tells the checkouts apart.
    println!("cargo:rerun-if-env-changed=PWD");
    let mut files = Vec::new();
    collect(&root, &root, &mut files)?;
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // No `connect` constructors: they clash with the Milvus `Connect` RPC; clients are
        // built with `XClient::new(channel)`.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
